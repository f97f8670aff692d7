using Diffuse.Denoisers;
using Diffuse.Randomness;
using Diffuse.Runtime;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Cli.Serving;

/// <summary>
/// Runs requests of one setting as one batch. Request j's rows get the initial noise of its own (seed, i), the noise
/// that <c>diffuse sample</c> draws (<see cref="SeededNoise"/> is a pure function of seed, stream and index), so each
/// request's samples are those of its own run, and a sampler that draws noise at every step draws each request's rows
/// from that request's seed too (<see cref="StepNoise.Of"/>). After every network evaluation each request's
/// cancellation is checked: a cancelled request is answered at once and its rows leave the network's batch (<see cref="LiveRows"/>); when none is left the run stops.
/// </summary>
internal static class CohortRun
{
    public static void Run(DiffusionModel model, IReadOnlyList<SampleJob> jobs)
    {
        if (jobs.Count == 1)
            RunAlone(model, jobs[0]);
        else
            RunTogether(model, jobs);
    }

    /// <summary>One request through <see cref="DiffusionModel.SampleBatches"/>, the call <c>diffuse sample</c> makes.</summary>
    private static void RunAlone(DiffusionModel model, SampleJob job)
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

    private static void RunTogether(DiffusionModel model, IReadOnlyList<SampleJob> jobs)
    {
        var offsets = new int[jobs.Count + 1];
        for (int j = 0; j < jobs.Count; j++) offsets[j + 1] = offsets[j] + jobs[j].Spec.Count;
        foreach (var job in jobs) job.BatchRows = offsets[^1];
        var first = jobs[0].Spec;
        var live = new bool[jobs.Count];
        Array.Fill(live, true);
        try
        {
            TorchThreads.Apply(model.IsImage);
            using var scope = NewDisposeScope();
            var noise = cat(jobs.Select(j => SeededNoise.Normal(j.Spec.Seed, StreamDomains.InitialNoise, 0, j.Spec.Count, model.ExampleShape, model.Device)).ToList(), 0);
            var stepNoise = StepNoise.Of(jobs.Select(j => new NoiseRows(j.Spec.Seed, 0, j.Spec.Count)).ToList());
            long[]? labels = first.Labels is null ? null : jobs.SelectMany(j => j.Spec.Labels!).ToArray();
            var denoiser = new LiveRows(model, labels, first.Guidance, offsets, live);
            var sigmas = first.Options.ResolveSigmas(model.Schedule);
            var x = SigmaSamplers.Run(first.Options.Kind, denoiser, noise, sigmas, stepNoise, first.Options, step =>
            {
                bool any = false;
                for (int j = 0; j < jobs.Count; j++)
                {
                    if (live[j] && jobs[j].CancellationToken.IsCancellationRequested)
                    {
                        live[j] = false;
                        jobs[j].Cancel();
                    }
                    if (!live[j]) continue;
                    any = true;
                    Report(jobs[j], step, offsets[j], jobs[j].Spec.Count);
                }
                if (!any) throw new OperationCanceledException();
            });
            // As DiffusionModel.SampleBatches ends a batch: images clamped to [−1, 1], tables back in the data's units.
            var samples = (model.IsImage ? x.clamp(-1, 1) : model.Normalization.Invert(x)).cpu();
            for (int j = 0; j < jobs.Count; j++)
                if (live[j]) jobs[j].Complete(samples.narrow(0, offsets[j], jobs[j].Spec.Count).clone().DetachFromDisposeScope());
        }
        catch (OperationCanceledException)
        {
            foreach (var job in jobs) job.Cancel();
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

    /// <summary>
    /// The model's denoiser for the rows still wanted: the network sees only the rows of live requests (with their
    /// classes), and the rows of cancelled ones get x̂0 = 0, ε̂ = 0, which the sampler carries along at no network cost.
    /// With every request live it is exactly what <see cref="DiffusionModel.SampleBatches"/> samples with.
    /// </summary>
    private sealed class LiveRows(DiffusionModel model, long[]? labels, double guidance, int[] offsets, bool[] live) : ISigmaDenoiser
    {
        public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma)
        {
            if (live.All(l => l)) return SigmaDenoiser.From(model.DenoiserFor(labels, guidance), model.Schedule).DenoiseAtSigma(z, sigma);
            var rows = new List<long>();
            for (int j = 0; j < live.Length; j++)
                if (live[j])
                    for (long r = offsets[j]; r < offsets[j + 1]; r++) rows.Add(r);
            var index = tensor(rows.ToArray(), device: z.device);
            long[]? liveLabels = labels is null ? null : rows.Select(r => labels[r]).ToArray();
            var output = SigmaDenoiser.From(model.DenoiserFor(liveLabels, guidance), model.Schedule).DenoiseAtSigma(z.index_select(0, index), sigma);
            return new DenoiserOutput(zeros_like(z).index_copy(0, index, output.X0), zeros_like(z).index_copy(0, index, output.Eps));
        }
    }
}
