using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Denoisers;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Sampling;

/// <summary>Sampling from pure noise (ᾱ_T = 0, σ_max = ∞) after the rescaling of Lin et al. 2023.</summary>
public class ZeroTerminalSnrTests
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };
    private static readonly long[] Shape = { 2 };

    [Fact]
    public void TheConfigOptionGivesAlphaBarZeroAtTheLastTimestep()
    {
        var schedule = NoiseSchedule.Create(new ScheduleConfig(ScheduleKind.Linear, 1000, ZeroTerminalSnr: true));
        Assert.True(schedule.HasZeroTerminalSnr);
        Assert.Equal(0.0, schedule.AlphaBar(999));
        Assert.Equal(1.0, schedule.Betas[999]);
        Assert.True(double.IsPositiveInfinity(schedule.Sigma(999)));
        Assert.Equal(999, schedule.TimestepOfSigma(double.PositiveInfinity));
        Assert.False(NoiseSchedule.Linear(1000).HasZeroTerminalSnr);
        Assert.Throws<DiffuseException>(() => new ScheduleConfig(ScheduleKind.Linear, 1, ZeroTerminalSnr: true).Validate());
    }

    [Fact]
    public void ZeroTerminalSnrWithEpsilonPredictionIsRejectedAtConfigurationTime()
    {
        var config = new ScheduleConfig(ScheduleKind.Cosine, 100, ZeroTerminalSnr: true);
        using var data = ToyData.Sample(ToyDistribution.Moons, 100, 0);
        var error = Assert.Throws<DiffuseException>(() => Trainer.Create(data, "moons", new TrainingConfig(Steps: 1), config, Prediction.Epsilon));
        Assert.Contains("v-prediction", error.Message);
        using (var trainer = Trainer.Create(data, "moons", new TrainingConfig(Steps: 1), config, Prediction.V))
            Assert.Throws<DiffuseException>(() => (trainer.Config with { Prediction = Prediction.Epsilon }).Validate());
        var schedule = NoiseSchedule.Create(config);
        using var network = new MlpNetwork(new MlpConfig(2, Width: 8, Depth: 1, TimeEmbedding: 8), 100);
        Assert.Throws<DiffuseException>(() => new NetworkDenoiser(network, schedule, Prediction.Epsilon));
        _ = new NetworkDenoiser(network, schedule, Prediction.X0);
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm, 500)]
    [InlineData(SamplerKind.Ddim, 200)]
    [InlineData(SamplerKind.Euler, 500)]
    [InlineData(SamplerKind.Heun, 100)]
    [InlineData(SamplerKind.EulerAncestral, 1000)]
    [InlineData(SamplerKind.DpmSolver2M, 100)]
    [InlineData(SamplerKind.DpmSolver3M, 100)]
    [InlineData(SamplerKind.DpmSolver2MSde, 100)]
    [InlineData(SamplerKind.UniPc, 100)]
    public void EverySamplerStartsFromPureNoise(SamplerKind kind, int steps)
    {
        // The Karras levels then run from ∞ through σ_{T−1} ≈ 1.5e4 (instead of 157 without the rescaling), so the
        // step counts are larger than on the original schedule for the same accuracy.
        var schedule = NoiseSchedule.Linear(1000).WithZeroTerminalSnr();
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var options = new SamplerOptions(kind, steps,
            Spacing: SamplerNames.UsesNoiseLevels(kind) ? SamplerSpacing.Karras : SamplerSpacing.Trailing);
        if (SamplerNames.UsesNoiseLevels(kind)) Assert.True(double.IsPositiveInfinity(options.ResolveSigmas(schedule)[0]));
        using var scope = NewDisposeScope();
        SigmaSamplerTests.AssertGaussian(Sampler.Generate(denoiser, schedule, Shape, 20_000, 3, options));
    }

    [Fact]
    public void KarrasLevelsStartAtInfinityThenFollowTheLargestFiniteLevel()
    {
        var schedule = NoiseSchedule.Cosine(1000).WithZeroTerminalSnr();
        var sigmas = NoiseLevels.Karras(schedule, 10);
        Assert.Equal(11, sigmas.Length);
        Assert.True(double.IsPositiveInfinity(sigmas[0]));
        Assert.Equal(schedule.Sigma(998), sigmas[1]);
        Assert.Equal(schedule.Sigma(0), sigmas[9]);
        Assert.Equal(0.0, sigmas[10]);
        Assert.Equal(new[] { double.PositiveInfinity, 0.0 }, NoiseLevels.LogSnr(schedule, 1));
        // Heun takes one evaluation from σ = ∞ (no slope to average there) and one on the last step.
        Assert.Equal(2 * 10 - 2, new SamplerOptions(SamplerKind.Heun, 10, Spacing: SamplerSpacing.Karras).FunctionEvaluations(schedule));
    }

    [Fact]
    public void AVPredictionNetworkGivesFiniteEstimatesAtPureNoise()
    {
        var schedule = NoiseSchedule.Linear(100).WithZeroTerminalSnr();
        using var network = new MlpNetwork(new MlpConfig(2, Width: 8, Depth: 1, TimeEmbedding: 8), 100);
        var denoiser = new NetworkDenoiser(network, schedule, Prediction.V);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var z = SeededNoise.Normal(0, 0, 0, 5, Shape);
        var (x0, eps) = denoiser.DenoiseAtSigma(z, double.PositiveInfinity);
        Assert.True(x0.isfinite().all().item<bool>());
        Assert.True(eps.allclose(z));   // at ᾱ = 0, z is the noise itself
        var samples = Sampler.Generate(denoiser, schedule, Shape, 5, 0, new SamplerOptions(SamplerKind.DpmSolver2M, 10, Spacing: SamplerSpacing.Karras));
        Assert.True(samples.isfinite().all().item<bool>());
    }
}
