using Diffuse.Denoisers;
using Diffuse.Editing;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>
/// Inpainting against closed forms. For x = (x1, x2) ~ N(0, [[1, ρ], [ρ, 1]]) with x1 known, the filled coordinate should
/// follow x2 | x1 ~ N(ρ·x1, 1 − ρ²).
/// </summary>
public class InpaintingTests
{
    private const double Rho = 0.9, Known = 1.5;
    private readonly ITestOutputHelper _output;

    public InpaintingTests(ITestOutputHelper output) => _output = output;

    private static (double Mean, double Variance, double KnownError) Inpaint(SamplerKind kind, int steps, RePaintSchedule schedule, int count)
    {
        var denoiser = new CorrelatedGaussianDenoiser(new[] { 0.0, 0.0 }, new[,] { { 1.0, Rho }, { Rho, 1.0 } });
        using var scope = NewDisposeScope();
        var image = full(count, 2, Known, dtype: ScalarType.Float64);
        var mask = tensor(new[] { 1.0, 0.0 }, dtype: ScalarType.Float64).unsqueeze(0);
        var path = new EditingPath(kind, NoiseLevels.LogSnr(NoiseSchedule.Linear(1000), steps));
        var result = Inpainting.Run(denoiser, image, mask, path, new SamplerOptions(kind), schedule, seed: 3);
        var x2 = result.select(1, 1);
        return (x2.mean().item<double>(), x2.var().item<double>(), (result.select(1, 0) - Known).abs().max().item<double>());
    }

    [Fact]
    public void RePaintSamplesTheGaussianConditionalWhereReplacementIsBiased()
    {
        const int count = 2000;
        double exactMean = Rho * Known, exactVariance = 1 - Rho * Rho, standardError = Math.Sqrt(exactVariance / count);
        var replacement = Inpaint(SamplerKind.EulerAncestral, 100, new RePaintSchedule(1), count);
        var repaint = Inpaint(SamplerKind.EulerAncestral, 200, new RePaintSchedule(Resample: 20, Jump: 1), count);
        _output.WriteLine($"replacement: mean {replacement.Mean:0.0000}, variance {replacement.Variance:0.0000}; RePaint: mean {repaint.Mean:0.0000}, variance {repaint.Variance:0.0000}; exact {exactMean:0.0000}, {exactVariance:0.0000}");
        // Both keep the known value exactly: the last step returns x̂0, which is x_known there.
        Assert.Equal(0, replacement.KnownError);
        Assert.Equal(0, repaint.KnownError);
        // Replacement alone does not condition the generated coordinate enough (Lugmayr et al. 2022, §4.1): its mean
        // stays far from ρ·x1. RePaint's resampling reaches the conditional within sampling error and the bias of 200
        // finite steps (2 % of the mean; variance within 10 %).
        Assert.True(exactMean - replacement.Mean > 0.3, $"replacement mean {replacement.Mean}");
        Assert.InRange(repaint.Mean, 0.98 * exactMean - 3 * standardError, exactMean + 3 * standardError);
        Assert.InRange(repaint.Variance, 0.9 * exactVariance, 1.1 * exactVariance);
    }

    [Theory]
    [InlineData(SamplerKind.DpmSolver2M, 1)]
    [InlineData(SamplerKind.EulerAncestral, 1)]
    [InlineData(SamplerKind.DpmSolver2M, 3)]
    public void KeepsTheKnownPixelsExactlyAndWithAnEmptyMaskIsSampling(SamplerKind kind, int resample)
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, new[] { 0.5, -0.5, 0.0, 1.0 }, new[] { 0.3, 0.6, 1.0, 0.1 });
        using var scope = NewDisposeScope();
        var options = new SamplerOptions(kind, 12, Spacing: SamplerSpacing.Karras);
        var path = EditingPath.Resolve(options, schedule, deterministic: false);
        var image = SeededNoise.Normal(9, 0, 0, 6, new long[] { 4 });
        var mask = tensor(new float[] { 1, 0, 1, 0 }).unsqueeze(0);
        var result = Inpainting.Run(denoiser, image, mask, path, options, new RePaintSchedule(resample, 5), seed: 4);
        Assert.True(Tensors.Same(result.index_select(1, tensor(new long[] { 0, 2 })), image.index_select(1, tensor(new long[] { 0, 2 }))));
        Assert.False(result.index_select(1, tensor(new long[] { 1, 3 })).allclose(image.index_select(1, tensor(new long[] { 1, 3 }))));
        if (resample == 1)
        {
            var empty = Inpainting.Run(denoiser, image, zeros_like(mask), path, options, new RePaintSchedule(1), seed: 4, first: 2);
            var sampled = Sampler.SampleBatch(denoiser, schedule, new long[] { 4 }, 2, 6, 4, options);
            Assert.True(Tensors.Same(empty, sampled), "an empty mask is plain sampling from the same seed");
        }
    }

    [Fact]
    public void RePaintScheduleRejectsBadValues()
    {
        Assert.Contains("RePaintSchedule.Resample", Assert.Throws<DiffuseException>(() => new RePaintSchedule(0).Validate()).Message);
        Assert.Contains("RePaintSchedule.Jump", Assert.Throws<DiffuseException>(() => new RePaintSchedule(2, 0).Validate()).Message);
        Assert.Equal(30, new RePaintSchedule(3, 5).StepCount(10));
    }
}
