using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Training;

/// <summary>
/// End-to-end checks on trained (not exact) models: the exact denoiser has no error, so it cannot reveal error
/// amplification at the noisiest steps (e.g. cosine schedule with ε-prediction, where ᾱ_T ≈ 2e-9).
/// </summary>
public class TrainedModelTests
{
    [Theory]
    [InlineData(ScheduleKind.Linear, Prediction.Epsilon)]
    [InlineData(ScheduleKind.Cosine, Prediction.Epsilon)]
    [InlineData(ScheduleKind.Sigmoid, Prediction.V)]
    [InlineData(ScheduleKind.Cosine, Prediction.X0)]
    public void AShortTrainingRunLearnsTheDistributionWithEverySampler(ScheduleKind schedule, Prediction prediction)
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 4000, 0);
        using var heldOut = ToyData.Sample(ToyDistribution.Moons, 1000, 77);
        using var trainer = Trainer.Create(data, "moons",
            new TrainingConfig(Steps: 800, BatchSize: 256, LearningRate: 3e-3, WarmupSteps: 50),
            new ScheduleConfig(schedule, 1000), prediction, new MlpConfig(2, Width: 64, Depth: 2, TimeEmbedding: 32));
        trainer.Run();
        using var model = trainer.ToModel();
        double dataStd = data.std().item<float>();
        foreach (var options in new[]
        {
            new SamplerOptions(SamplerKind.Ddpm, 100),
            new SamplerOptions(SamplerKind.Ddim, 20),
            new SamplerOptions(SamplerKind.Ddim, 50, SamplerSpacing.Linspace),
            // σ-space samplers between trained timesteps: the network gets fractional timesteps. Heun needs more steps:
            // in σ it integrates the stiff linear part too, and the cosine schedule's σ_max is about 2e4 (with the exact
            // Gaussian denoiser 10 Karras steps give 2.7 times the data's std there, 40 steps 1.05).
            new SamplerOptions(SamplerKind.DpmSolver2M, 20, Spacing: SamplerSpacing.Karras),
            new SamplerOptions(SamplerKind.Heun, 40, Spacing: SamplerSpacing.Karras),
            new SamplerOptions(SamplerKind.UniPc, 15, Spacing: SamplerSpacing.LogSnr),
        })
        {
            using var scope = NewDisposeScope();
            var samples = model.Sample(1000, 5, options);
            double std = samples.std().item<float>();
            Assert.True(Math.Abs(std / dataStd - 1) < 0.2, $"{schedule}/{prediction}/{options.Kind}x{options.Steps}: sample std {std} vs data {dataStd}");
            double energy = SampleMetrics.EnergyDistance(samples, heldOut);
            double floor = SampleMetrics.EnergyDistance(data.narrow(0, 0, 1000), heldOut);
            // Loose: an untrained network gives about 1.0 here; real data against real data about 0.002.
            Assert.True(energy < 0.05, $"{schedule}/{prediction}/{options.Kind}x{options.Steps}: energy distance {energy} (floor {floor})");
        }
    }

    [Fact]
    public void ProjectingX0OntoTheDataRangeNeverMovesTheExactDenoiser()
    {
        // The exact posterior mean of Gaussian data lies far inside a wide box: the projection must leave it unchanged.
        var schedule = NoiseSchedule.Cosine(1000);
        var exact = new Diffuse.Denoisers.GaussianDenoiser(schedule, new[] { 0.0, 0.0 }, new[] { 1.0, 1.0 });
        var clamped = new Diffuse.Denoisers.ClampedDenoiser(exact, schedule, new[] { -50.0, -50.0 }, new[] { 50.0, 50.0 });
        using var scope = NewDisposeScope();
        var a = Sampler.Generate(exact, schedule, new long[] { 2 }, 200, 3, new SamplerOptions(SamplerKind.Ddim, 20));
        var b = Sampler.Generate(clamped, schedule, new long[] { 2 }, 200, 3, new SamplerOptions(SamplerKind.Ddim, 20));
        Assert.True(a.allclose(b, rtol: 1e-4, atol: 1e-4));
    }
}
