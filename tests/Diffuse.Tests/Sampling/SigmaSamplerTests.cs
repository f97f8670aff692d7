using Diffuse.Denoisers;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Diffuse.Tests.Sampling;

/// <summary>
/// The σ-space samplers against closed forms. For Gaussian data N(μ, s²) the exact denoiser is D(x; σ) = μ + s²/(s² + σ²)·(x − μ)
/// and the probability-flow ODE dx/dσ = (x − D)/σ is linear with the solution x(σ) = μ + (x(σ_max) − μ)·√(s² + σ²)/√(s² + σ_max²).
/// </summary>
public class SigmaSamplerTests
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };
    private static readonly long[] Shape = { 2 };

    /// <summary>The samplers of the table that take any noise levels (a new row is tested here without listing it).</summary>
    public static readonly SamplerKind[] SigmaKinds =
        SamplerTable.All.Where(d => d.Accepts(SamplerOption.NoiseLevels)).Select(d => d.Kind).ToArray();

    /// <summary>Every sampler of the table, σ-space ones first.</summary>
    public static IEnumerable<object[]> AllKinds() =>
        SigmaKinds.Concat(SamplerTable.All.Select(d => d.Kind).Except(SigmaKinds)).Select(k => new object[] { k });

    private readonly ITestOutputHelper _output;

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public SigmaSamplerTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(SamplerKind.Euler, 1.0)]
    [InlineData(SamplerKind.Heun, 2.0)]
    [InlineData(SamplerKind.DpmSolver2M, 2.0)]
    [InlineData(SamplerKind.DpmSolver3M, 3.0)]
    [InlineData(SamplerKind.UniPc, 3.0)]
    public void OdeSamplersConvergeAtTheirTheoreticalOrder(SamplerKind kind, double order)
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var noise = SeededNoise.Normal(5, 0, 0, 8, Shape).to_type(ScalarType.Float64);
        int[] steps = { 40, 80, 160 };
        var errors = new double[steps.Length];
        for (int k = 0; k < steps.Length; k++)
        {
            var sigmas = NoiseLevels.Karras(schedule, steps[k]);
            var x = SigmaSamplers.Run(kind, denoiser, noise, sigmas, new StepNoise(5, 0), new SamplerOptions(kind));
            errors[k] = (x - ExactEndPoint(noise, sigmas)).abs().max().item<double>();
        }
        // Least-squares slope of log error against log steps.
        var logN = steps.Select(n => Math.Log(n)).ToArray();
        var logE = errors.Select(e => Math.Log(e)).ToArray();
        double meanN = logN.Average(), meanE = logE.Average();
        double slope = -logN.Zip(logE, (a, b) => (a - meanN) * (b - meanE)).Sum() / logN.Sum(a => (a - meanN) * (a - meanN));
        _output.WriteLine($"{kind}: errors {string.Join(", ", errors.Select(e => e.ToString("0.00e0")))} at {string.Join("/", steps)} steps; order {slope:0.00}");
        Assert.InRange(slope, order - 0.2, order + 0.25);
    }

    /// <summary>
    /// The exact ODE solution at the last non-zero level σ_min, followed by the same final step every sampler takes,
    /// x = D(x; σ_min). That last step is a fixed map for all step counts, so the error left is the ODE error at σ_min.
    /// </summary>
    private static Tensor ExactEndPoint(Tensor noise, double[] sigmas)
    {
        double sigmaMax = sigmas[0], sigmaMin = sigmas[^2];
        var mu = tensor(Mean, dtype: ScalarType.Float64);
        var s2 = tensor(Variance, dtype: ScalarType.Float64);
        var xMax = noise * Math.Sqrt(1 + sigmaMax * sigmaMax);
        var xMin = mu + (xMax - mu) * (s2 + sigmaMin * sigmaMin).sqrt() / (s2 + sigmaMax * sigmaMax).sqrt();
        return mu + s2 / (s2 + sigmaMin * sigmaMin) * (xMin - mu);
    }

    [Fact]
    public void EulerOnTheTimestepGridIsDdimWithEtaZero()
    {
        var schedule = NoiseSchedule.Linear(1000);
        using var scope = NewDisposeScope();
        var network = new MlpNetwork(new MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8), 1000);
        foreach (var denoiser in new IDenoiser[]
        {
            new GaussianDenoiser(schedule, Mean, Variance),
            new NetworkDenoiser(network, schedule, Prediction.Epsilon),
            new NetworkDenoiser(network, schedule, Prediction.V),
        })
        {
            foreach (var spacing in new[] { SamplerSpacing.Trailing, SamplerSpacing.Leading, SamplerSpacing.Linspace })
            {
                var ddim = Sampler.Generate(denoiser, schedule, Shape, 64, 2, new SamplerOptions(SamplerKind.Ddim, 20, spacing));
                var euler = Sampler.Generate(denoiser, schedule, Shape, 64, 2, new SamplerOptions(SamplerKind.Euler, 20, spacing));
                // Float32 rounding of the two forms (the untrained ε-network's x̂0 reaches hundreds at σ_max).
                double difference = ((ddim - euler).abs().max() / (1 + ddim.abs().max())).item<float>();
                Assert.True(difference < 1e-5, $"{denoiser.GetType().Name}/{spacing}: Euler and DDIM differ by {difference} (relative)");
            }
        }
    }

    [Fact]
    public void EulerAncestralOnTheTimestepGridIsDdpmWithThePosteriorVariance()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var ddpm = Sampler.Generate(denoiser, schedule, Shape, 64, 4, new SamplerOptions(SamplerKind.Ddpm, 25, Variance: DdpmVariance.Small));
        var ancestral = Sampler.Generate(denoiser, schedule, Shape, 64, 4, new SamplerOptions(SamplerKind.EulerAncestral, 25));
        Assert.True((ddpm - ancestral).abs().max().item<float>() < 1e-4);
    }

    [Fact]
    public void ADenoiserThatOnlyKnowsTrainedTimestepsIsExactOnTheirLevels()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var exact = new GaussianDenoiser(schedule, Mean, Variance);
        var timestepsOnly = new TimestepsOnly(exact);
        using var scope = NewDisposeScope();
        var options = new SamplerOptions(SamplerKind.DpmSolver2M, 15);
        var a = Sampler.Generate(exact, schedule, Shape, 32, 1, options);
        var b = Sampler.Generate(timestepsOnly, schedule, Shape, 32, 1, options);
        Assert.True(Same(a, b));
        // Between trained levels it quantises: close to the exact denoiser, not equal.
        var karras = options with { Spacing = SamplerSpacing.Karras };
        var c = Sampler.Generate(exact, schedule, Shape, 32, 1, karras);
        var d = Sampler.Generate(timestepsOnly, schedule, Shape, 32, 1, karras);
        Assert.True(c.allclose(d, rtol: 0, atol: 0.05));
    }

    private sealed class TimestepsOnly(IDenoiser inner) : IDenoiser
    {
        public DenoiserOutput Denoise(Tensor z, int timestep) => inner.Denoise(z, timestep);
    }

    [Fact]
    public void NetworkDenoiserTakesFractionalTimestepsBetweenTrainedLevels()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var network = new MlpNetwork(new MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8), 1000);
        var denoiser = new NetworkDenoiser(network, schedule, Prediction.V);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var z = SeededNoise.Normal(1, 0, 0, 4, Shape);
        double sigma = schedule.SigmaOfTimestep(500.5);
        var output = denoiser.DenoiseAtSigma(z, sigma);
        // By hand: the network at t = 500.5 and the v-conversion at ᾱ = 1/(1 + σ²).
        var raw = network.call(z, full(4, 500.5f));
        var expected = PredictionConversion.ToX0AndEps(Prediction.V, raw, z, tensor(1 / (1 + sigma * sigma), dtype: ScalarType.Float32));
        Assert.True(output.X0.allclose(expected.X0, rtol: 1e-5, atol: 1e-6));
        Assert.True(output.Eps.allclose(expected.Eps, rtol: 1e-5, atol: 1e-6));
        // On a trained level the two entry points agree exactly.
        var atSigma = denoiser.DenoiseAtSigma(z, schedule.Sigma(321));
        var atTimestep = denoiser.Denoise(z, 321);
        Assert.True(atSigma.X0.allclose(atTimestep.X0, rtol: 1e-6, atol: 1e-6));
    }

    [Theory]
    [InlineData(SamplerKind.Euler, 200)]
    [InlineData(SamplerKind.Heun, 50)]
    [InlineData(SamplerKind.EulerAncestral, 200)]
    [InlineData(SamplerKind.DpmSolver2M, 50)]
    [InlineData(SamplerKind.DpmSolver3M, 50)]
    [InlineData(SamplerKind.DpmSolver2MSde, 100)]
    [InlineData(SamplerKind.UniPc, 50)]
    public void EverySamplerReproducesTheGaussianWithTheExactDenoiser(SamplerKind kind, int steps)
    {
        // ODE samplers map N(0, I) linearly onto N(μ, s²) up to their truncation error, SDE samplers approach the same
        // law; within 3% on Karras levels (first-order samplers need more steps: about 0.89·s² after 50 Euler steps).
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        AssertGaussian(Sampler.Generate(denoiser, schedule, Shape, 20_000, 7, new SamplerOptions(kind, steps, Spacing: SamplerSpacing.Karras)));
    }

    /// <summary>Checks that <paramref name="samples"/> follow N(Mean, Variance) within 3% plus four standard errors.</summary>
    internal static void AssertGaussian(Tensor samples)
    {
        using var scope = NewDisposeScope();
        var x = samples.to_type(ScalarType.Float64);
        long count = x.shape[0];
        Assert.True(x.isfinite().all().item<bool>());
        var mean = x.mean(new long[] { 0 }).data<double>().ToArray();
        var variance = x.var(0).data<double>().ToArray();
        for (int d = 0; d < Mean.Length; d++)
        {
            double se = Math.Sqrt(Variance[d] / count), varianceSe = Math.Sqrt(2.0 / count);
            Assert.InRange(mean[d], Mean[d] - 4 * se - 0.02, Mean[d] + 4 * se + 0.02);
            Assert.InRange(variance[d] / Variance[d], 0.97 - 4 * varianceSe, 1.03 + 4 * varianceSe);
        }
    }

    [Fact]
    public void StochasticChurnKeepsTheGaussian()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var options = new SamplerOptions(SamplerKind.Heun, 200, Spacing: SamplerSpacing.Karras, Churn: new StochasticChurn(40, 0.05, 50, 1.0));
        var x = Sampler.Generate(denoiser, schedule, Shape, 20_000, 9, options);
        Assert.False(Same(x, Sampler.Generate(denoiser, schedule, Shape, 20_000, 9, options with { Churn = null })));
        AssertGaussian(x);
    }

    [Fact]
    public void DpmSolver2MWithExactScoreReproducesMixtureWeights()
    {
        // As for DDIM with 100 steps: 30% / 70% of samples in the two components, each with its own spread, now in 20
        // steps. On the 20 trailing timesteps the last level is σ(49) ≈ 0.17 and the final jump to 0 narrows the
        // components (variance 0.076 instead of 0.1, as DDIM's 0.089): few steps need levels that reach down to σ_min.
        var schedule = NoiseSchedule.Linear(1000);
        double[] weights = { 0.3, 0.7 };
        var means = new double[,] { { -2.0, 0.0 }, { 2.0, 1.0 } };
        double[] variances = { 0.1, 0.2 };
        var denoiser = new GaussianMixtureDenoiser(schedule, weights, means, variances);
        const int count = 10_000;
        using var scope = NewDisposeScope();
        foreach (var sigmas in new[] { SamplerSpacing.Karras, SamplerSpacing.LogSnr })
        {
            var x = Sampler.Generate(denoiser, schedule, Shape, count, 11, new SamplerOptions(SamplerKind.DpmSolver2M, 20, Spacing: sigmas));
            double fraction = (x.select(1, 0) < 0).to_type(ScalarType.Float64).mean().item<double>();
            double se = Math.Sqrt(0.3 * 0.7 / count);
            Assert.InRange(fraction, 0.3 - 4 * se - 0.01, 0.3 + 4 * se + 0.01);
            var left = x.index(x.select(1, 0) < 0);
            Assert.InRange(left.select(1, 0).var().item<float>(), 0.085, 0.115);
        }
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void EverySampleDependsOnlyOnItsSeedAndIndex(SamplerKind kind)
    {
        var schedule = NoiseSchedule.Linear(200);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var options = new SamplerOptions(kind, 12,
            Spacing: SamplerNames.UsesNoiseLevels(kind) ? SamplerSpacing.Karras : SamplerSpacing.Trailing,
            Churn: kind is SamplerKind.Euler or SamplerKind.Heun ? new StochasticChurn(10) : null);
        using var scope = NewDisposeScope();
        var all = Sampler.Generate(denoiser, schedule, Shape, 10, 3, options, batchSize: 10);
        var small = Sampler.Generate(denoiser, schedule, Shape, 10, 3, options, batchSize: 3);
        var single = Sampler.Generate(denoiser, schedule, Shape, 1, 3, options, first: 7);
        Assert.True(Same(all, small));
        Assert.True(Same(all[7], single[0]));
        Assert.False(Same(all, Sampler.Generate(denoiser, schedule, Shape, 10, 4, options)));
    }

    /// <summary>
    /// ClipX0 is one mechanism for every sampler: the x0 each step reports lies in [−c, c], and sampling with the option
    /// equals sampling the denoiser wrapped by <see cref="ClampedDenoiser.Clip(IDenoiser, NoiseSchedule, double?)"/>.
    /// </summary>
    [Theory]
    [MemberData(nameof(AllKinds))]
    public void ClippingX0IsTheClampingDecoratorForEverySampler(SamplerKind kind)
    {
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Linear(100);
        var exact = new GaussianDenoiser(schedule, Mean, Variance);   // x0 spreads to about ±4 at low noise
        const double clip = 0.75;
        var options = new SamplerOptions(kind, 8, Spacing: SamplerNames.UsesNoiseLevels(kind) ? SamplerSpacing.Karras : SamplerSpacing.Trailing);
        double largest = 0;
        var clipped = Sampler.Generate(exact, schedule, Shape, 64, 3, options with { ClipX0 = clip },
            onStep: step => largest = Math.Max(largest, step.X0.abs().max().to_type(ScalarType.Float64).item<double>()));
        Assert.InRange(largest, 0.5, clip + 1e-6);
        var wrapped = Sampler.Generate(ClampedDenoiser.Clip(exact, schedule, clip), schedule, Shape, 64, 3, options);
        Assert.True(clipped.equal(wrapped).all().item<bool>(), $"{kind}: ClipX0 differs from the clamping decorator");
        Assert.False(clipped.allclose(Sampler.Generate(exact, schedule, Shape, 64, 3, options)));
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void RepeatedSamplingLeaksNoTensors(SamplerKind kind)
    {
        var schedule = NoiseSchedule.Linear(100);
        var network = new MlpNetwork(new MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8), 100);
        var denoiser = new ClampedDenoiser(new NetworkDenoiser(network, schedule, Prediction.V), schedule, new[] { -3.0, -3.0 }, new[] { 3.0, 3.0 });
        var options = new SamplerOptions(kind, 8, Spacing: SamplerNames.UsesNoiseLevels(kind) ? SamplerSpacing.Karras : SamplerSpacing.Trailing, ClipX0: 2.5);
        int steps = 0;
        Sampler.Generate(denoiser, schedule, Shape, 10, 1, options, batchSize: 4, onStep: _ => steps++).Dispose();
        Assert.Equal(options.StepCount(schedule) * 3, steps);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) Sampler.Generate(denoiser, schedule, Shape, 10, 1, options, batchSize: 4, onStep: _ => { }).Dispose();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void FunctionEvaluationsCountNetworkCalls()
    {
        var schedule = NoiseSchedule.Linear(1000);
        var counting = new CountingDenoiser(new GaussianDenoiser(schedule, Mean, Variance));
        using var scope = NewDisposeScope();
        foreach (var kind in SigmaKinds.Append(SamplerKind.Ddpm).Append(SamplerKind.Ddim))
        {
            foreach (int steps in new[] { 1, 2, 10 })
            {
                var options = new SamplerOptions(kind, steps);
                counting.Calls = 0;
                Sampler.Generate(counting, schedule, Shape, 3, 0, options);
                Assert.Equal(options.FunctionEvaluations(schedule), counting.Calls);
                Assert.Equal(kind == SamplerKind.Heun ? 2 * steps - 1 : steps, counting.Calls);
            }
        }
    }

    private sealed class CountingDenoiser(GaussianDenoiser inner) : IDenoiser, ISigmaDenoiser
    {
        public int Calls { get; set; }

        public DenoiserOutput Denoise(Tensor z, int timestep) { Calls++; return inner.Denoise(z, timestep); }

        public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) { Calls++; return inner.DenoiseAtSigma(z, sigma); }
    }

    [Fact]
    public void OptionsRejectCombinationsThatDoNotFit()
    {
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.Ddim, 10, Spacing: SamplerSpacing.Karras).Validate());
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.Ddpm, SigmaList: new[] { 1.0, 0.5 }).Validate());
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.DpmSolver2M, Churn: new StochasticChurn(5)).Validate());
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.Euler, Eta: 0.5).Validate());
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.Heun, Churn: new StochasticChurn(-1)).Validate());
        Assert.Throws<DiffuseException>(() => new SamplerOptions(SamplerKind.Euler, Rho: 0).Validate());
        // ∞ needs zero terminal SNR.
        var options = new SamplerOptions(SamplerKind.Euler, SigmaList: new[] { double.PositiveInfinity, 1.0 });
        options.Validate();
        Assert.Throws<DiffuseException>(() => options.ResolveSigmas(NoiseSchedule.Linear(100)));
        Assert.Equal(new[] { double.PositiveInfinity, 1.0, 0.0 }, options.ResolveSigmas(NoiseSchedule.Linear(100).WithZeroTerminalSnr()));
        Assert.Equal("dpm++2m-sde", SamplerNames.Name(SamplerKind.DpmSolver2MSde));
        Assert.Equal(SamplerKind.EulerAncestral, SamplerNames.Parse("Euler-Ancestral"));
        Assert.Contains("unipc", Assert.Throws<DiffuseException>(() => SamplerNames.Parse("lms")).Message);
    }
}
