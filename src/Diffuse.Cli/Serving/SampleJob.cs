using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>One step of a running request, as its progress events report it.</summary>
/// <param name="Step">Steps done (1 … Steps).</param>
/// <param name="Steps">Steps of the run.</param>
/// <param name="Z">z_t after the step (first samples only: a PNG data URL, or points for tables), when previews were asked for.</param>
/// <param name="X0">The model's x̂0 at the step, in the same form, when previews were asked for.</param>
internal sealed record JobProgress(int Step, int Steps, object? Z, object? X0);

/// <summary>
/// A request waiting for or taking part in a run. The worker completes <see cref="Result"/> with the samples (a CPU
/// tensor owned by whoever takes it), or cancels it when the client went away, or fails it.
/// </summary>
internal sealed class SampleJob(SampleSpec spec, CancellationToken cancellationToken, Action<JobProgress>? progress)
{
    private readonly TaskCompletionSource<Tensor> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SampleSpec Spec { get; } = spec;

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public Action<JobProgress>? Progress { get; } = progress;

    public Task<Tensor> Result => _result.Task;

    /// <summary>Sample rows of the run this job had, for tests and the batching report.</summary>
    public int BatchRows { get; set; }

    public void Complete(Tensor samples)
    {
        if (!_result.TrySetResult(samples)) samples.Dispose();
    }

    public void Cancel() => _result.TrySetCanceled(CancellationToken.IsCancellationRequested ? CancellationToken : default);

    public void Fail(Exception error) => _result.TrySetException(error);
}
