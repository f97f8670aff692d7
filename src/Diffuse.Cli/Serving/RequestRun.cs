using Diffuse.Denoisers;
using Diffuse.Randomness;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// One sample request's run: the call <c>diffuse sample</c> makes (<see cref="DiffusionModel.SampleBatches"/>), on
/// the request's own thread, with the model seen through the worker's <see cref="NetworkPool"/> so that its network
/// evaluations are shared with the other running requests. Its samples depend only on its own options and seed. A
/// cancelled request stops at its next step (within one network evaluation) and leaves the pool.
/// </summary>
internal static class RequestRun
{
    public static void Run(DiffusionModel model, SampleJob job)
    {
        var spec = job.Spec;
        job.BatchRows = spec.Count;
        var batches = new List<Tensor>();
        try
        {
            using var scope = NewDisposeScope();
            foreach (var batch in model.SampleBatches(spec.Count, spec.Seed, spec.Options, step => Report(job, step, 0, spec.Count),
                classes: spec.Labels, guidance: spec.Guidance, cancellationToken: job.CancellationToken))
                batches.Add(batch);
            var all = batches.Count == 1 ? batches[0].alias() : cat(batches, 0);
            job.Complete(all.DetachFromDisposeScope());
        }
        catch (OperationCanceledException)
        {
            job.Cancel();
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    /// <summary>Reports a step to the job whose rows are <paramref name="start"/> … + <paramref name="count"/>, with pictures of its first images when it asked for them.</summary>
    private static void Report(SampleJob job, SamplerStep step, int start, int count)
    {
        if (job.Progress is not { } progress) return;
        object? z = null, x0 = null;
        if (job.Spec.Preview)
        {
            using var scope = NewDisposeScope();
            int shown = Math.Min(count, step.Z.dim() == 2 ? StepPictures.MaxPoints : StepPictures.MaxImages);
            z = StepPictures.Of(step.Z.narrow(0, start, shown), job.Spec);
            x0 = StepPictures.Of(step.X0.narrow(0, start, shown), job.Spec);
        }
        progress(new JobProgress(step.Step, step.Count, z, x0));
    }
}
