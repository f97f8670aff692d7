using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Parameterization;

/// <summary>
/// A stand-in for a trained network with learned variances on Gaussian data: the first half of its output is the exact
/// x0 prediction E[x0 | z_t], the second half a chosen raw variance output v(z).
/// </summary>
internal sealed class ExactGaussianNetwork : nn.Module<Tensor, Tensor, Tensor>
{
    public static readonly double[] Mean = { 1.5, -0.5 };
    public static readonly double[] Variance = { 0.25, 2.0 };
    private readonly GaussianDenoiser _exact;
    private readonly Func<Tensor, Tensor> _v;

    public ExactGaussianNetwork(NoiseSchedule schedule, Func<Tensor, Tensor> v) : base("exact")
    {
        _exact = new GaussianDenoiser(schedule, Mean, Variance);
        _v = v;
    }

    public override Tensor forward(Tensor z, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        int n = (int)Math.Round(timesteps[0].item<float>());
        return cat(new[] { _exact.Denoise(z, n).X0, _v(z).to_type(z.dtype) }, 1).MoveToOuterDisposeScope();
    }

    public static NetworkDenoiser Denoiser(NoiseSchedule schedule, Func<Tensor, Tensor> v) =>
        new(new ExactGaussianNetwork(schedule, v), schedule, Prediction.X0, learnedVariance: true);

    /// <summary>Rows drawn from the Gaussian, [count, 2] float32.</summary>
    public static Tensor Data(ulong seed, int count) =>
        tensor(Mean, dtype: ScalarType.Float32) + tensor(Variance, dtype: ScalarType.Float32).sqrt() * SeededNoise.Normal(seed, 0, 0, count, new long[] { 2 });
}

public class LearnedVarianceTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(100);

    [Theory]
    [InlineData(10)]
    [InlineData(99)]
    public void TheFractionInterpolatesTheLogVarianceBetweenThePosteriorVarianceAndBeta(int n)
    {
        using var scope = NewDisposeScope();
        var post = GaussianProcess.Posterior(Schedule.AlphaBar(n), Schedule.AlphaBar(n - 1));
        var bounds = LearnedVariance.StepLogVariances(Schedule, n);
        Assert.Equal(Schedule.Betas[n], Math.Exp(bounds.LogBeta), 14);
        var v = tensor(new[] { -1.0, 1.0, 0.0 });
        var variance = LearnedVariance.LogVariance(LearnedVariance.Fraction(v), bounds).exp().data<double>().ToArray();
        Assert.Equal(post.Variance, variance[0], 14);                              // f = 0: β̃
        Assert.Equal(Schedule.Betas[n], variance[1], 14);                          // f = 1: β
        Assert.Equal(Math.Sqrt(post.Variance * Schedule.Betas[n]), variance[2], 14);   // f = ½: the geometric mean
    }

    [Fact]
    public void TheStepToTheDataClipsThePosteriorVarianceToTheStepAbove()
    {
        // At t = 1 (index 0) β̃ = 0; the paper's code uses β̃ of t = 2 instead: β_2·(1 − ᾱ_1)/(1 − ᾱ_2).
        var (logBeta, logPosterior) = LearnedVariance.StepLogVariances(Schedule, 0);
        Assert.Equal(Math.Log(Schedule.Betas[0]), logBeta, 12);
        Assert.Equal(Math.Log(Schedule.Betas[1] * (1 - Schedule.AlphaBar(0)) / (1 - Schedule.AlphaBar(1))), logPosterior, 12);
        // With no step above (T = 1) it falls back to β.
        var single = NoiseSchedule.FromBetas(new[] { 0.3 });
        Assert.Equal(Math.Log(0.3), LearnedVariance.StepLogVariances(single, 0).LogPosteriorVariance, 14);
    }

    [Fact]
    public void ASubsequenceUsesTheRespacedBeta()
    {
        // The step from index 66 to 33 of a subsequence: β' = 1 − Π_{k=34}^{66} (1 − β_k), β̃' = (1 − ᾱ_33)/(1 − ᾱ_66)·β'.
        double product = 1;
        for (int k = 34; k <= 66; k++) product *= 1 - Schedule.Betas[k];
        double betaRespaced = 1 - product;
        var (logBeta, logPosterior) = LearnedVariance.StepLogVariances(Schedule.AlphaBar(66), Schedule.AlphaBar(33));
        Assert.Equal(betaRespaced, Math.Exp(logBeta), 12);
        Assert.Equal((1 - Schedule.AlphaBar(33)) / (1 - Schedule.AlphaBar(66)) * betaRespaced, Math.Exp(logPosterior), 12);
    }

    [Fact]
    public void TheNetworkDenoiserSplitsItsOutput()
    {
        using var scope = NewDisposeScope();
        var denoiser = ExactGaussianNetwork.Denoiser(Schedule, z => z.sin());
        var z = SeededNoise.Normal(1, 0, 0, 8, new long[] { 2 });
        var output = denoiser.Denoise(z, 40);
        Assert.True(output.X0.allclose(new GaussianDenoiser(Schedule, ExactGaussianNetwork.Mean, ExactGaussianNetwork.Variance).Denoise(z, 40).X0));
        Assert.True(output.VarianceFraction!.allclose((z.sin() + 1) / 2));
        Assert.Null(new GaussianDenoiser(Schedule, ExactGaussianNetwork.Mean, ExactGaussianNetwork.Variance).Denoise(z, 40).VarianceFraction);
        // The clamping decorator keeps it.
        var clamped = new ClampedDenoiser(denoiser, Schedule, new[] { -1.0, -1.0 }, new[] { 1.0, 1.0 }).Denoise(z, 40);
        Assert.True(clamped.VarianceFraction!.allclose(output.VarianceFraction));
        // A network without the variance half is named.
        var plain = new NetworkDenoiser(new ExactGaussianNetwork(Schedule, v => v).Narrow(), Schedule, Prediction.X0, learnedVariance: true);
        Assert.Contains("twice", Assert.Throws<DiffuseException>(() => plain.Denoise(z, 40)).Message);
    }

    /// <summary>A class-conditional network: the mixture's exact x0 for the class (null class 2: unconditional) and v = class − 0.5.</summary>
    private sealed class ConditionalNetwork : nn.Module<Tensor, Tensor, Tensor?, Tensor>
    {
        private readonly GaussianMixtureDenoiser _mixture =
            new(Schedule, new[] { 0.5, 0.5 }, new double[,] { { -2, 0 }, { 2, 0 } }, new[] { 0.2, 0.2 });

        public ConditionalNetwork() : base("conditional") { }

        public override Tensor forward(Tensor z, Tensor timesteps, Tensor? classes)
        {
            using var scope = NewDisposeScope();
            var labels = classes ?? full(z.shape[0], 2L, dtype: ScalarType.Int64);
            var x0 = _mixture.Denoise(z, (int)Math.Round(timesteps[0].item<float>()), labels.masked_fill(labels == 2, -1)).X0;
            var v = (labels.to_type(z.dtype) - 0.5).unsqueeze(1).expand_as(z);
            return cat(new[] { x0, v }, 1).MoveToOuterDisposeScope();
        }
    }

    [Fact]
    public void GuidanceKeepsTheConditionalBranchsLearnedVariance()
    {
        using var scope = NewDisposeScope();
        var denoiser = new NetworkDenoiser(ConditionedNetwork.WithClasses(new ConditionalNetwork(), 2), Schedule, Prediction.X0, learnedVariance: true);
        var z = SeededNoise.Normal(2, 0, 0, 6, new long[] { 2 });
        var classes = tensor(new long[] { 0, 1, 0, 1, 1, 0 });
        var conditional = denoiser.Denoise(z, 30, classes);
        var guided = new ClassifierFreeGuidance(denoiser, classes, 2.5).Denoise(z, 30);
        Assert.True(guided.VarianceFraction!.allclose(conditional.VarianceFraction!));
        Assert.True(conditional.VarianceFraction!.allclose((classes.to_type(ScalarType.Float32) + 0.5).unsqueeze(1).expand_as(z) / 2));
        // Unconditional rows (class −1, or no labels) reach the network as its null class.
        Assert.True(denoiser.Denoise(z, 30, full(6, -1L)).VarianceFraction!.allclose(denoiser.Denoise(z, 30).VarianceFraction!));
    }

    [Theory]
    [InlineData(0, 1.0, DdpmVariance.Large)]
    [InlineData(0, -1.0, DdpmVariance.Small)]
    [InlineData(10, 1.0, DdpmVariance.Large)]
    [InlineData(10, -1.0, DdpmVariance.Small)]
    public void DdpmWithALearnedVarianceAtABoundReproducesTheFixedVarianceSampler(int steps, double v, DdpmVariance fixedVariance)
    {
        using var scope = NewDisposeScope();
        var learned = ExactGaussianNetwork.Denoiser(Schedule, z => full_like(z, v));
        var exact = new GaussianDenoiser(Schedule, ExactGaussianNetwork.Mean, ExactGaussianNetwork.Variance);
        var got = Sampler.Generate(learned, Schedule, new long[] { 2 }, 64, seed: 3, new SamplerOptions(SamplerKind.Ddpm, steps));
        var want = Sampler.Generate(exact, Schedule, new long[] { 2 }, 64, seed: 3, new SamplerOptions(SamplerKind.Ddpm, steps, Variance: fixedVariance));
        Assert.True((got - want).abs().max().item<float>() <= 1e-6f);
    }

    [Fact]
    public void TheBoundWithALearnedVarianceOfBetaIsTheLargeVarianceBound()
    {
        using var scope = NewDisposeScope();
        var data = ExactGaussianNetwork.Data(4, 64);
        var exact = new GaussianDenoiser(Schedule, ExactGaussianNetwork.Mean, ExactGaussianNetwork.Variance);
        // f = 1 everywhere: Σ = β_t at every step and β_1 for the decoder, DDPM's large choice with the decoder variance β_1
        // (the fixed-variance bound's default decoder variance is β̃_2, as in improved-diffusion, whose learned range also
        // ends at β_1).
        var learnedLarge = VariationalBound.Compute(ExactGaussianNetwork.Denoiser(Schedule, z => ones_like(z)), Schedule, data, 5);
        var large = VariationalBound.Compute(exact, Schedule, data, 5, DdpmVariance.Large, decoderVariance: DecoderVariance.FirstBeta);
        Assert.Equal(large.NatsPerDim, learnedLarge.NatsPerDim, 5);
        // f = 0: Σ = β̃ at every step but the first, whose decoder variance is the clipped β̃ instead of β_1.
        var learnedSmall = VariationalBound.Compute(ExactGaussianNetwork.Denoiser(Schedule, z => -ones_like(z)), Schedule, data, 5);
        var small = VariationalBound.Compute(exact, Schedule, data, 5, DdpmVariance.Small);
        Assert.Equal(small.DiffusionNatsPerDim, learnedSmall.DiffusionNatsPerDim, 5);
    }
}

internal static class NetworkTestExtensions
{
    /// <summary>The network with only its first half of output channels: an ordinary prediction network.</summary>
    public static nn.Module<Tensor, Tensor, Tensor> Narrow(this nn.Module<Tensor, Tensor, Tensor> network) => new Halved(network);

    private sealed class Halved : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor, Tensor> _inner;
        public Halved(nn.Module<Tensor, Tensor, Tensor> inner) : base("halved") => _inner = inner;
        public override Tensor forward(Tensor z, Tensor t) => _inner.call(z, t).narrow(1, 0, z.shape[1]);
    }
}
