using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.Likelihoods;

public class VariationalBoundTests
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };
    private const int Count = 4000;

    private static Tensor GaussianData() =>
        (SeededNoise.Normal(11, 0, 0, Count, new long[] { 2 }) * tensor(Variance).sqrt() + tensor(Mean)).to_type(ScalarType.Float32);

    /// <summary>
    /// The expected decoder term per dimension for Gaussian data and the exact denoiser: −log N(x; E[x | z_1], σ²) averages
    /// to ½·log(2πσ²) + ½·Var(x | z_1)/σ², with Var(x | z_1) = s²(1 − ᾱ)/(ᾱs² + 1 − ᾱ) per dimension.
    /// </summary>
    private static double ExpectedDecoderTerm(double alphaBar, double decoderVariance) =>
        Variance.Average(s2 => 0.5 * Math.Log(2 * Math.PI * decoderVariance)
                               + 0.5 * s2 * (1 - alphaBar) / (alphaBar * s2 + 1 - alphaBar) / decoderVariance);

    /// <summary>The sampling error of the decoder term's mean: ½·(Var/σ²)·χ²₁ averaged over Count·2 values.</summary>
    private static double DecoderTermError(double alphaBar, double decoderVariance) =>
        Variance.Max(s2 => 0.5 * s2 * (1 - alphaBar) / (alphaBar * s2 + 1 - alphaBar) / decoderVariance) * Math.Sqrt(2.0 / (2 * Count));

    [Theory]
    [InlineData(DecoderVariance.ClippedPosterior)]
    [InlineData(DecoderVariance.FirstBeta)]
    public void TheDecoderTermUsesTheChosenVarianceAtTheFirstStep(DecoderVariance choice)
    {
        // Ho et al.'s and improved-diffusion's convention (the default): β̃ of the second step; the other: β_1.
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Linear(100);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        double expectedVariance = choice == DecoderVariance.FirstBeta
            ? schedule.Betas[0]
            : GaussianProcess.Posterior(schedule.AlphaBar(1), schedule.AlphaBar(0)).Variance;
        var bound = VariationalBound.Compute(denoiser, schedule, GaussianData(), 5, decoderVariance: choice);
        double expected = ExpectedDecoderTerm(schedule.AlphaBar(0), expectedVariance);
        Assert.InRange(bound.DecoderNatsPerDim, expected - 4 * DecoderTermError(schedule.AlphaBar(0), expectedVariance),
            expected + 4 * DecoderTermError(schedule.AlphaBar(0), expectedVariance));
        if (choice == DecoderVariance.ClippedPosterior)
            Assert.Equal(bound.NatsPerDim, VariationalBound.Compute(denoiser, schedule, GaussianData(), 5).NatsPerDim);
    }

    [Fact]
    public void TheNoisedStateKeepsItsNoiseWhereAlphaBarIsWithinSinglePrecisionOfOne()
    {
        // ᾱ_1 = 1 − 10⁻⁹ rounds to 1 in single precision: a z_1 formed there carries no noise at all, x̂0(z_1) ≈ x, and
        // the decoder term loses its ½·Var(x | z_1)/β_1 ≈ ½ nats. Formed in double precision it matches the closed form.
        using var scope = NewDisposeScope();
        var betas = new double[20];
        betas[0] = 1e-9;
        for (int i = 1; i < betas.Length; i++) betas[i] = 0.05 * i;
        var schedule = NoiseSchedule.FromBetas(betas);
        Assert.Equal(1f, (float)schedule.AlphaBar(0));
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var bound = VariationalBound.Compute(denoiser, schedule, GaussianData(), 5, decoderVariance: DecoderVariance.FirstBeta);
        double expected = ExpectedDecoderTerm(schedule.AlphaBar(0), betas[0]);
        double error = DecoderTermError(schedule.AlphaBar(0), betas[0]);
        Assert.InRange(bound.DecoderNatsPerDim, expected - 4 * error, expected + 4 * error);
        Assert.True(expected - 0.5 * Math.Log(2 * Math.PI * betas[0]) > 0.4);
    }

    [Fact]
    public void TheNoisedStateIsTheForwardMarginalInDoublePrecision()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new[] { 0.25f, -1f, 0.75f });
        var eps = tensor(new[] { 1f, 0.5f, -2f });
        const double alphaBar = 1 - 1e-7;
        var z = VariationalBound.NoisedState(x, alphaBar, eps);
        Assert.Equal(ScalarType.Float32, z.dtype);
        var xs = new[] { 0.25, -1, 0.75 };
        var es = new[] { 1, 0.5, -2 };
        for (int i = 0; i < 3; i++)
            Assert.Equal((float)(Math.Sqrt(alphaBar) * xs[i] + Math.Sqrt(1 - alphaBar) * es[i]), z[i].item<float>());
    }
}
