using Diffuse.Denoisers;
using Diffuse.Editing;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>SDEdit against closed forms with the exact denoiser of Gaussian data N(μ, s²).</summary>
public class ImageToImageTests
{
    private static readonly double[] Mean = { 0.5, -1.0 };
    private static readonly double[] Variance = { 0.5, 1.5 };

    [Theory]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.EulerAncestral)]
    [InlineData(SamplerKind.DpmSolver2MSde)]
    [InlineData(SamplerKind.Heun)]
    public void StrengthOneIsSamplingFromTheSameNoise(SamplerKind kind)
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var options = new SamplerOptions(kind, 15, Spacing: SamplerSpacing.LogSnr);
        var image = full(5, 2, 3.0f);
        var edited = ImageToImage.Run(denoiser, image, 1.0, EditingPath.Resolve(options, schedule, false), options, seed: 11, first: 7);
        var sampled = Sampler.SampleBatch(denoiser, schedule, new long[] { 2 }, 7, 5, 11, options);
        Assert.True(Tensors.Same(edited, sampled));
    }

    [Fact]
    public void TheEditFollowsTheExactFlowFromTheNoisedImage()
    {
        // x_σ = x + σ·ε (ε ~ N(0, I)) carried to σ = 0 by the exact ODE: μ + (x_σ − μ)·s/√(s² + σ²), so the edits of one
        // image have mean μ + (x − μ)·s/√(s² + σ²) and variance σ²·s²/(s² + σ²).
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var options = new SamplerOptions(SamplerKind.DpmSolver3M, 100, Spacing: SamplerSpacing.Karras);
        var path = EditingPath.Resolve(options, schedule, false);
        const int count = 20000;
        var x = tensor(new[] { 2.0, 0.0 }, dtype: ScalarType.Float64);
        var image = x.unsqueeze(0).expand(count, 2).contiguous();
        foreach (double strength in new[] { 0.3, 0.6 })
        {
            int steps = ImageToImage.StepsAt(strength, path.Steps);
            double sigma = path.Sigmas[path.Steps - steps];
            var edited = ImageToImage.Run(denoiser, image, strength, path, options, seed: 2);
            for (int d = 0; d < 2; d++)
            {
                double s2 = Variance[d], shrink = Math.Sqrt(s2 / (s2 + sigma * sigma));
                double mean = Mean[d] + (x[d].item<double>() - Mean[d]) * shrink, variance = sigma * sigma * shrink * shrink;
                var column = edited.select(1, d);
                double standardError = Math.Sqrt(variance / count);
                Assert.InRange(column.mean().item<double>(), mean - 4 * standardError, mean + 4 * standardError);
                Assert.InRange(column.var().item<double>(), 0.95 * variance, 1.05 * variance);
            }
        }
    }

    [Fact]
    public void StrengthMapsToTheLastStepsAndIsChecked()
    {
        Assert.Equal(15, ImageToImage.StepsAt(0.3, 50));
        Assert.Equal(1, ImageToImage.StepsAt(0.001, 50));
        Assert.Equal(50, ImageToImage.StepsAt(1, 50));
        foreach (double bad in new[] { 0, -0.5, 1.01, double.NaN })
            Assert.Contains("must be in (0, 1]", Assert.Throws<DiffuseException>(() => ImageToImage.StepsAt(bad, 50)).Message);
    }
}
