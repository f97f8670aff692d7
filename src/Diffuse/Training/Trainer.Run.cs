using System.Diagnostics;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Training;

/// <summary>A checkpoint that training wrote.</summary>
/// <param name="Folder">The model folder.</param>
/// <param name="Step">The step it holds.</param>
public sealed class CheckpointWrittenEventArgs(string Folder, int Step) : EventArgs
{
    /// <summary>The model folder.</summary>
    public string Folder { get; } = Folder;

    /// <summary>The step the checkpoint holds.</summary>
    public int Step { get; } = Step;
}

/// <summary>
/// Preview samples drawn during training from the EMA weights: the same seeds every time (so a series of previews shows
/// the model improving, not the noise changing), one row per class for a class-conditional model. The images are
/// valid only while the handlers run (they are freed afterwards); copy them to keep them.
/// </summary>
/// <param name="Step">The training step.</param>
/// <param name="Images">float32 [rows × columns, C, H, W] in [−1, 1].</param>
/// <param name="Columns">Images per row.</param>
/// <param name="RowLabels">The class name of each row, or null for an unconditional model.</param>
public sealed class PreviewEventArgs(int Step, Tensor Images, int Columns, IReadOnlyList<string>? RowLabels) : EventArgs
{
    /// <summary>The training step.</summary>
    public int Step { get; } = Step;

    /// <summary>float32 [rows × columns, C, H, W] in [−1, 1]; freed after the handlers return.</summary>
    public Tensor Images { get; } = Images;

    /// <summary>Images per row.</summary>
    public int Columns { get; } = Columns;

    /// <summary>The class name of each row, or null for an unconditional model.</summary>
    public IReadOnlyList<string>? RowLabels { get; } = RowLabels;
}

public sealed partial class Trainer
{
    private string? _ownFolder;       // the folder this trainer resumed from or wrote to: writing there again is continuing
    private int _savedStep = -1;      // the step of the last checkpoint written

    /// <summary>Seed of the preview samples.</summary>
    public const ulong PreviewSeed = 20_251_128;

    /// <summary>Images per row of a preview.</summary>
    public const int PreviewColumns = 8;

    /// <summary>The sampler of previews: 20 DPM-Solver++(2M) steps on log-SNR-uniform noise levels.</summary>
    public static SamplerOptions PreviewSampler { get; } = new(SamplerKind.DpmSolver2M, 20, Spacing: SamplerSpacing.LogSnr);

    /// <summary>Raised after every optimizer step (on rank 0 and every other rank alike) with the step's losses.</summary>
    public event EventHandler<TrainingProgress>? StepCompleted;

    /// <summary>Raised after a checkpoint is complete in the model folder (rank 0 only: the other ranks write nothing).</summary>
    public event EventHandler<CheckpointWrittenEventArgs>? CheckpointWritten;

    /// <summary>
    /// Raised every <see cref="PreviewEvery"/> steps and at the last step of an image model with preview samples
    /// (rank 0 only, and only when a handler is attached: drawing them costs 20 network evaluations per image).
    /// </summary>
    public event EventHandler<PreviewEventArgs>? PreviewReady;

    /// <summary>
    /// Steps between previews (<see cref="PreviewReady"/>); 0 for none. Default: the checkpoint interval for images, 0
    /// for tables.
    /// </summary>
    public int PreviewEvery
    {
        get => _previewEvery ?? (Config.Data.IsImage ? Config.Training.CheckpointEvery : 0);
        set
        {
            if (value < 0) throw new DiffuseException($"the preview interval must be zero or positive (got {value}).");
            _previewEvery = value;
        }
    }

    private int? _previewEvery;

    /// <summary>
    /// Runs until <see cref="TrainingConfig.Steps"/> (or earlier, at <paramref name="stopAtStep"/>, as an interrupted run
    /// would), reporting progress, writing checkpoints to <paramref name="folder"/> when given (on rank 0 only), and a
    /// log of every step (<see cref="TrainingLog"/>: metrics.csv and metrics.jsonl). Sets libtorch's thread count for
    /// the model (<see cref="TorchThreads"/>).
    /// </summary>
    /// <param name="onProgress">Called after every step.</param>
    /// <param name="folder">The model folder, or null to keep the model in memory only.</param>
    /// <param name="cancellation">
    /// Stops the run after the current step: a checkpoint of that step is written to <paramref name="folder"/> (so the
    /// run resumes from there), then <see cref="OperationCanceledException"/> is thrown.
    /// </param>
    /// <param name="stopAtStep">Stop at this step, as an interrupted run would.</param>
    /// <param name="overwrite">
    /// Allow writing into a folder that already holds another run's model (replacing it). Without it such a folder is
    /// refused before any step: continue a run with <see cref="Resume(string, Tensor, int?, Distributed.ICollective?, Device?)"/>.
    /// </param>
    /// <exception cref="DiffuseException">The folder holds another model, or the loss diverged.</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled (after its checkpoint was written).</exception>
    public void Run(Action<TrainingProgress>? onProgress = null, string? folder = null, CancellationToken cancellation = default, int? stopAtStep = null,
        bool overwrite = false)
    {
        using var folderLock = folder is not null && _collective.Rank == 0 ? FolderLock.Acquire(folder) : null;
        if (folder is not null) CheckFolder(folder, overwrite);
        if (folder is not null && _collective.Rank == 0) CheckFreeSpace(folder);
        TorchThreads.Apply(Config.Data.IsImage);
        int total = Config.Training.Steps;
        int stop = Math.Min(total, stopAtStep ?? total);
        var clock = Stopwatch.StartNew();
        int startStep = Step;
        double smoothed = _losses.Count > 0 ? _losses[^1].Loss : double.NaN;
        var smoothedQuartiles = _quartileLosses.Count > 0 ? (double[])_quartileLosses[^1].Clone() : Enumerable.Repeat(double.NaN, Quartiles).ToArray();
        using var log = folder is not null && _collective.Rank == 0 ? TrainingLog.Open(folder, Step) : null;
        while (Step < stop)
        {
            if (cancellation.IsCancellationRequested)
            {
                if (folder is not null && _savedStep != Step) Save(folder);
                cancellation.ThrowIfCancellationRequested();
            }
            double lr = Config.Training.LearningRateAt(Step);
            double loss = TrainStep();
            smoothed = double.IsNaN(smoothed) ? loss : 0.99 * smoothed + 0.01 * loss;
            var quartiles = _quartileLosses[^1];
            for (int q = 0; q < Quartiles; q++)
                if (!double.IsNaN(quartiles[q]))
                    smoothedQuartiles[q] = double.IsNaN(smoothedQuartiles[q]) ? quartiles[q] : 0.99 * smoothedQuartiles[q] + 0.01 * quartiles[q];
            double rate = (Step - startStep) / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            var progress = new TrainingProgress(Step, total, loss, smoothed, lr, rate, TimeSpan.FromSeconds((total - Step) / Math.Max(rate, 1e-9)),
                LastGradientNorm, (double[])smoothedQuartiles.Clone());
            log?.Append(progress, quartiles, clock.Elapsed);
            onProgress?.Invoke(progress);
            StepCompleted?.Invoke(this, progress);
            if (PreviewReady is not null && PreviewEvery > 0 && Config.Data.IsImage && _collective.Rank == 0 && (Step % PreviewEvery == 0 || Step == total))
                RaisePreview();
            if (folder is not null && (Step % Config.Training.CheckpointEvery == 0 || Step == stop)) Save(folder);
        }
        if (folder is not null && Step == startStep && _savedStep != Step) Save(folder);
    }

    /// <summary>
    /// <see cref="Run"/> on its own thread: awaitable, reporting through <paramref name="progress"/>, and cancellable
    /// (the run stops after the current step, writes a checkpoint of it to <paramref name="folder"/> so that it resumes
    /// from there, and the task ends cancelled).
    /// </summary>
    /// <param name="folder">The model folder, or null to keep the model in memory only.</param>
    /// <param name="progress">Receives progress after every step.</param>
    /// <param name="cancellationToken">Stops the run after the current step.</param>
    /// <param name="overwrite">Allow replacing another run's model in <paramref name="folder"/>.</param>
    public Task RunAsync(string? folder = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        bool overwrite = false) =>
        Task.Factory.StartNew(() => Run(progress is null ? null : progress.Report, folder, cancellationToken, overwrite: overwrite),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Refuses a folder that holds a model this trainer did not resume from or write (nothing is overwritten).</summary>
    private void CheckFolder(string folder, bool overwrite)
    {
        if (overwrite || _collective.Rank != 0) return;
        string full = Path.GetFullPath(folder);
        if (string.Equals(full, _ownFolder, StringComparison.Ordinal)) return;
        if (File.Exists(Path.Combine(folder, ModelFolder.ConfigFile)) || File.Exists(Path.Combine(folder, ModelFolder.WeightsFile)))
            throw new DiffuseException($"'{folder}' already holds a model; continue it with Trainer.Resume, write to another folder, or pass overwrite: true to replace it (nothing was overwritten).");
    }

    /// <summary>
    /// Refuses to start when the folder's disk cannot hold a checkpoint: the weights, the resume state (network, EMA and
    /// two AdamW moments) and, while a checkpoint is written, the previous one beside the new one.
    /// </summary>
    private void CheckFreeSpace(string folder)
    {
        long parameters = Network.parameters().Sum(p => p.numel());
        long needed = 2 * (5 * 4 * parameters) + (1 << 20);
        long available;
        try
        {
            available = new DriveInfo(Path.GetFullPath(folder)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return;   // no figure to check against: the write itself reports a full disk
        }
        if (available < needed)
            throw new DiffuseException($"'{folder}' has {available / 1e6:F1} MB free, but a checkpoint of this model needs about {needed / 1e6:F1} MB (the weights, the resume state and the previous checkpoint while the new one is written). Free space or write to another disk.");
    }

    /// <summary>Draws the preview samples from the EMA weights and hands them to <see cref="PreviewReady"/>.</summary>
    private void RaisePreview()
    {
        using var model = ToModel();
        int classes = model.ClassCount;
        int rows = classes > 0 ? classes : 4;
        long[]? labels = classes > 0 ? Enumerable.Range(0, rows * PreviewColumns).Select(i => (long)(i / PreviewColumns)).ToArray() : null;
        using var images = model.Sample(rows * PreviewColumns, PreviewSeed, PreviewSampler, classes: labels, guidance: classes > 0 ? 2.0 : 1.0);
        PreviewReady?.Invoke(this, new PreviewEventArgs(Step, images, PreviewColumns, classes > 0 ? model.ClassNames : null));
    }
}
