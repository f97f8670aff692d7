using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Editing;
using Diffuse.Sampling;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>The editing methods of <see cref="DiffusionModel"/>: batches, progress, cancellation and the round trip on a trained model.</summary>
public class EditingModelTests
{
    [Fact]
    public void EncodeDecodeRoundTripsInBatchesReportsEveryStepAndCancelsWithoutLeaks()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 500, 0);
        using var trainer = Trainer.Create(data, "moons", new TrainingConfig(Steps: 30, BatchSize: 128));
        trainer.Run();
        using var model = trainer.ToModel();
        using var scope = NewDisposeScope();
        var rows = model.Normalization.Apply(data.narrow(0, 0, 40));
        var options = new SamplerOptions(SamplerKind.DpmSolver2M, 40, Spacing: SamplerSpacing.LogSnr);
        int steps = 0;
        var latents = model.Encode(rows, options, onStep: _ => steps++, batchSize: 16);
        Assert.Equal(40 * 3, steps);   // 40 steps for each of 3 batches
        var decoded = model.Decode(latents, options, batchSize: 7);
        Assert.True((decoded - rows).abs().max().item<float>() < 0.01f, "encode then decode returns the rows");
        // The batch size does not change the latents.
        Assert.True(model.Encode(rows, options, batchSize: 40).allclose(latents, 1e-5, 1e-5));

        var mask = tensor(new float[] { 1, 0 });
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        using var cancellation = new CancellationTokenSource();
        int seen = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => model.Inpaint(rows, mask, 1, options, new RePaintSchedule(2, 5),
            onStep: _ => { if (++seen == 4) cancellation.Cancel(); }, cancellationToken: cancellation.Token));
        Assert.Equal(4, seen);
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        // RePaint reports R times the path's steps; SDEdit its last ⌈s·N⌉.
        int inpaintSteps = 0, editSteps = 0;
        model.Inpaint(rows, mask, 1, options, new RePaintSchedule(2, 5), onStep: _ => inpaintSteps++);
        model.Edit(rows, 0.25, 1, options, onStep: _ => editSteps++);
        Assert.Equal(80, inpaintSteps);
        Assert.Equal(10, editSteps);
        Assert.Contains("trained without classes", Assert.Throws<DiffuseException>(() => model.Edit(rows, 0.5, 1, options, classes: new long[40])).Message);
    }
}
