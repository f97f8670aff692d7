using Diffuse.Cli.Commands;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>One step of a running request, as its progress events report it.</summary>
/// <param name="Step">Steps done (1 … Steps).</param>
/// <param name="Steps">Steps of the run (of its phase, for an editing request).</param>
/// <param name="Z">z_t after the step (first samples only: a PNG data URL, or points for tables), when previews were asked for.</param>
/// <param name="X0">The model's x̂0 at the step, in the same form, when previews were asked for.</param>
/// <param name="Phase">The phase of an editing request (encode, decode, edit, inpaint), or null for sampling.</param>
internal sealed record JobProgress(int Step, int Steps, object? Z, object? X0, string? Phase = null);

/// <summary>A request waiting in a model's queue: the worker runs it, or cancels it when the client went away, or fails it.</summary>
internal abstract class QueuedJob(CancellationToken cancellationToken, Action<JobProgress>? progress)
{
    public CancellationToken CancellationToken { get; } = cancellationToken;

    public Action<JobProgress>? Progress { get; } = progress;

    public abstract void Cancel();

    public abstract void Fail(Exception error);
}

/// <summary>
/// A sample request waiting for or taking part in a run. The worker completes <see cref="Result"/> with the samples (a
/// CPU tensor owned by whoever takes it), or cancels it when the client went away, or fails it.
/// </summary>
internal sealed class SampleJob(SampleSpec spec, CancellationToken cancellationToken, Action<JobProgress>? progress) : QueuedJob(cancellationToken, progress)
{
    private readonly TaskCompletionSource<Tensor> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SampleSpec Spec { get; } = spec;

    public Task<Tensor> Result => _result.Task;

    /// <summary>The most samples that shared one network evaluation with this job (its own included), for tests and the batching report.</summary>
    public int BatchRows { get; set; }

    public void Complete(Tensor samples)
    {
        if (!_result.TrySetResult(samples)) samples.Dispose();
    }

    public override void Cancel() => _result.TrySetCanceled(CancellationToken.IsCancellationRequested ? CancellationToken : default);

    public override void Fail(Exception error) => _result.TrySetException(error);
}

/// <summary>
/// The checked work of an editing request: its decoded inputs (owned here, freed once the work has run or will not run)
/// and the run that turns them into the response's bytes.
/// </summary>
internal sealed class EditingWork(Func<EditingRun, EncodedResult> run, params Tensor?[] inputs) : IDisposable
{
    public Func<EditingRun, EncodedResult> Run { get; } = run;

    /// <summary>Takes the inputs out of the caller's dispose scope: they live until <see cref="Dispose"/>.</summary>
    public EditingWork Detach()
    {
        foreach (var input in inputs) input?.DetachFromDisposeScope();
        return this;
    }

    public void Dispose()
    {
        foreach (var input in inputs) input?.Dispose();
    }
}

/// <summary>
/// An editing request (encode, decode, edit, inpaint, interpolate). It runs alone on the model's worker, between sampling
/// runs, and reports each step of each phase; a client that goes away stops it within one network evaluation.
/// </summary>
internal sealed class EditingJob(EditingWork work, CancellationToken cancellationToken, Action<JobProgress>? progress) : QueuedJob(cancellationToken, progress)
{
    private readonly TaskCompletionSource<EncodedResult> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _released;

    public Task<EncodedResult> Result => _result.Task;

    /// <summary>Runs the work on the calling thread (the model's worker) and completes <see cref="Result"/>.</summary>
    public void Run()
    {
        try
        {
            using var scope = NewDisposeScope();
            var run = new EditingRun(_ => { }, Report, CancellationToken);
            _result.TrySetResult(work.Run(run));
        }
        catch (OperationCanceledException)
        {
            Cancel();
        }
        catch (Exception e)
        {
            Fail(e);
        }
        finally
        {
            Release();
        }
    }

    public override void Cancel()
    {
        _result.TrySetCanceled(CancellationToken.IsCancellationRequested ? CancellationToken : default);
        Release();
    }

    public override void Fail(Exception error)
    {
        _result.TrySetException(error);
        Release();
    }

    /// <summary>A phase with its steps reported as progress events.</summary>
    private Tensor Report(string label, long total, CancellationToken token, Func<Action<Diffuse.Sampling.SamplerStep>, CancellationToken, Tensor> phase)
    {
        int done = 0;
        return phase(_ => Progress?.Invoke(new JobProgress(++done, (int)total, null, null, label)), token);
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) work.Dispose();
    }
}
