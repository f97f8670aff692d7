using Diffuse.Denoisers;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Sampling;

public class GuidanceTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000);
    private static GaussianMixtureDenoiser Mixture() =>
        new(Schedule, new[] { 0.5, 0.5 }, new double[,] { { -2, 0 }, { 2, 0 } }, new[] { 0.2, 0.2 });

    [Theory]
    [InlineData(100)]
    [InlineData(700)]
    public void ScaleZeroIsUnconditionalAndScaleOneIsConditional(int timestep)
    {
        using var scope = NewDisposeScope();
        var z = Diffuse.Randomness.SeededNoise.Normal(1, 0, 0, 16, new long[] { 2 });
        var classes = tensor(Enumerable.Range(0, 16).Select(i => (long)(i % 2)).ToArray());
        var mixture = Mixture();
        var uncond = mixture.Denoise(z, timestep, null);
        var cond = mixture.Denoise(z, timestep, classes);
        Assert.True(new ClassifierFreeGuidance(mixture, classes, 0).Denoise(z, timestep).Eps.allclose(uncond.Eps));
        Assert.True(new ClassifierFreeGuidance(mixture, classes, 1).Denoise(z, timestep).Eps.allclose(cond.Eps));
        // w = 3: ε̃ = ε_u + 3(ε_c − ε_u), computed by the batched path.
        var guided = new ClassifierFreeGuidance(mixture, classes, 3).Denoise(z, timestep);
        Assert.True(guided.Eps.allclose(uncond.Eps + 3 * (cond.Eps - uncond.Eps), rtol: 1e-5, atol: 1e-5));
        // The guided x0 is the x0 implied by the guided ε.
        var alphaBar = tensor(Schedule.AlphaBar(timestep), dtype: ScalarType.Float32);
        Assert.True(guided.X0.allclose(Diffuse.Parameterization.PredictionConversion.ToX0AndEps(Diffuse.Parameterization.Prediction.Epsilon, guided.Eps, z, alphaBar).X0, rtol: 1e-4, atol: 1e-4));
        // And at the same noise level in σ-space the decorator gives the same answer.
        double sigma = Schedule.Sigma(timestep);
        var atSigma = new ClassifierFreeGuidance(mixture, classes, 3).DenoiseAtSigma(z, sigma);
        Assert.True(atSigma.Eps.allclose(guided.Eps, rtol: 1e-4, atol: 1e-4));
    }

    [Fact]
    public void ConditionalSamplingDrawsTheRequestedComponent()
    {
        using var scope = NewDisposeScope();
        var mixture = Mixture();
        var classes = tensor(Enumerable.Range(0, 400).Select(i => (long)(i % 2)).ToArray());
        var guided = new ClassifierFreeGuidance(mixture, classes, 1);
        var x = Sampler.Generate(guided, Schedule, new long[] { 2 }, 400, 4, new SamplerOptions(SamplerKind.Ddim, 50), batchSize: 400);
        var wantRight = classes.eq(1);
        var isRight = x.select(1, 0) > 0;
        Assert.True(wantRight.eq(isRight).all().item<bool>());
    }
}
