using System.Diagnostics;
using Diffuse.Data.Images;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse;

/// <summary>Progress of a sampling run.</summary>
/// <param name="SamplesDone">Samples finished.</param>
/// <param name="Samples">Samples the run draws.</param>
/// <param name="Step">Steps done in the current batch.</param>
/// <param name="Steps">Steps of every batch.</param>
/// <param name="Fraction">The share of the whole run done, in [0, 1].</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="Remaining">Estimated time to the end.</param>
public sealed record SamplingProgress(int SamplesDone, int Samples, int Step, int Steps, double Fraction, TimeSpan Elapsed, TimeSpan Remaining);

/// <summary>Progress of an evaluation (a likelihood bound or the ODE likelihood).</summary>
/// <param name="Done">Units of work done (network evaluations of one batch for the bound).</param>
/// <param name="Total">Units of work in all.</param>
/// <param name="Elapsed">Time since the evaluation started.</param>
/// <param name="Remaining">Estimated time to the end.</param>
public sealed record EvaluationProgress(int Done, int Total, TimeSpan Elapsed, TimeSpan Remaining);

public sealed partial class DiffusionModel
{
    /// <summary>
    /// <see cref="Sample"/> on a worker thread, reporting progress after every step and stopping within one network
    /// evaluation when <paramref name="cancellationToken"/> is cancelled (the task is then cancelled and every
    /// intermediate tensor is freed). The result, owned by the caller, is identical to <see cref="Sample"/>'s.
    /// </summary>
    /// <param name="count">Number of samples.</param>
    /// <param name="seed">The seed; sample i depends only on (seed, i).</param>
    /// <param name="options">Sampler and steps (default: <see cref="DefaultSampler"/>).</param>
    /// <param name="classes">For a class-conditional model, the class of each sample; null samples unconditionally.</param>
    /// <param name="guidance">Classifier-free guidance scale s (default <see cref="SamplingDefaults.Guidance"/>; 1 is the conditional model, Ho and Salimans' w is s − 1; see <see cref="Denoisers.ClassifierFreeGuidance"/>).</param>
    /// <param name="progress">Receives progress after every step (on the thread pool, as <see cref="Progress{T}"/> posts it).</param>
    /// <param name="cancellationToken">Cancels the run.</param>
    public Task<Tensor> SampleAsync(int count, ulong seed, SamplerOptions? options = null, IReadOnlyList<long>? classes = null,
        double? guidance = null, IProgress<SamplingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        OnWorker(() => Sample(count, seed, options, Reporter(count, progress), 0, classes, guidance, 0, cancellationToken), cancellationToken);

    /// <summary><see cref="SampleAsync"/> mapped to 8-bit pixels, uint8 [count, C, H, W] (image models only).</summary>
    /// <param name="count">Number of images.</param>
    /// <param name="seed">The seed; image i depends only on (seed, i).</param>
    /// <param name="options">Sampler and steps (default: <see cref="DefaultSampler"/>).</param>
    /// <param name="classes">For a class-conditional model, the class of each image; null samples unconditionally.</param>
    /// <param name="guidance">Classifier-free guidance scale s (default <see cref="SamplingDefaults.Guidance"/>; 1 is the conditional model, Ho and Salimans' w is s − 1; see <see cref="Denoisers.ClassifierFreeGuidance"/>).</param>
    /// <param name="progress">Receives progress after every step.</param>
    /// <param name="cancellationToken">Cancels the run.</param>
    public Task<Tensor> SampleImagesAsync(int count, ulong seed, SamplerOptions? options = null, IReadOnlyList<long>? classes = null,
        double? guidance = null, IProgress<SamplingProgress>? progress = null, CancellationToken cancellationToken = default) =>
        OnWorker(() => SampleImages(count, seed, options, Reporter(count, progress), 0, classes, guidance, 0, cancellationToken), cancellationToken);

    /// <summary><see cref="Bound(Tensor, ulong, DdpmVariance, Action{int, int}?, CancellationToken)"/> on a worker thread, with progress and cancellation.</summary>
    /// <param name="data">Rows in the data's original units, [N, D].</param>
    /// <param name="seed">Seed of the noise.</param>
    /// <param name="variance">The reverse variance.</param>
    /// <param name="progress">Receives progress after every network evaluation.</param>
    /// <param name="cancellationToken">Cancels the evaluation.</param>
    public Task<BoundResult> BoundAsync(Tensor data, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        OnWorker(() => Bound(data, seed, variance, Reporter(progress), cancellationToken), cancellationToken);

    /// <summary><see cref="Bound(ImageDataset, ulong, DdpmVariance, Action{int, int}?, int, int, CancellationToken)"/> on a worker thread, with progress and cancellation.</summary>
    /// <param name="images">8-bit images of the model's shape.</param>
    /// <param name="seed">Seed of the noise.</param>
    /// <param name="variance">The reverse variance.</param>
    /// <param name="timestepSamples">0 for all T terms; K for an unbiased stratified estimate from K terms per batch.</param>
    /// <param name="progress">Receives progress after every network evaluation.</param>
    /// <param name="cancellationToken">Cancels the evaluation.</param>
    public Task<BoundResult> BoundAsync(ImageDataset images, ulong seed = 0, DdpmVariance variance = DdpmVariance.Large, int timestepSamples = 0,
        IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default) =>
        OnWorker(() => Bound(images, seed, variance, Reporter(progress), timestepSamples: timestepSamples, cancellationToken: cancellationToken), cancellationToken);

    /// <summary>Runs <paramref name="work"/> on its own thread (tensor work blocks for long; it must not hold a pool thread).</summary>
    private static Task<T> OnWorker<T>(Func<T> work, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(work, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Turns sampler steps into <see cref="SamplingProgress"/> over a run of <paramref name="count"/> samples.</summary>
    private static Action<SamplerStep>? Reporter(int count, IProgress<SamplingProgress>? progress)
    {
        if (progress is null) return null;
        var clock = Stopwatch.StartNew();
        int done = 0;
        return step =>
        {
            int size = (int)step.Z.shape[0];
            double fraction = Math.Min(1, (done + size * (double)step.Step / step.Count) / count);
            if (step.Step == step.Count) done += size;
            progress.Report(new SamplingProgress(done, count, step.Step, step.Count, fraction, clock.Elapsed, Remaining(clock.Elapsed, fraction)));
        };
    }

    /// <summary>Turns (done, total) callbacks into <see cref="EvaluationProgress"/>.</summary>
    private static Action<int, int>? Reporter(IProgress<EvaluationProgress>? progress)
    {
        if (progress is null) return null;
        var clock = Stopwatch.StartNew();
        return (done, total) => progress.Report(new EvaluationProgress(done, total, clock.Elapsed,
            Remaining(clock.Elapsed, total > 0 ? (double)done / total : 0)));
    }

    private static TimeSpan Remaining(TimeSpan elapsed, double fraction) =>
        fraction <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(elapsed.TotalSeconds * (1 - fraction) / fraction);
}
