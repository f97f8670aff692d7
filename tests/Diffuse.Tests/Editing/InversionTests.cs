using Diffuse.Denoisers;
using Diffuse.Editing;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Diffuse.Tests.Editing;

/// <summary>
/// DDIM inversion with the exact denoiser of Gaussian data N(μ, s²), whose probability-flow ODE is linear: encoding then
/// decoding is the identity up to the solver's error, and that error falls at the solver's order.
/// </summary>
public class InversionTests
{
    private static readonly double[] Mean = { 1.5, -0.5, 0.0 };
    private static readonly double[] Variance = { 0.25, 2.0, 1.0 };
    private readonly ITestOutputHelper _output;

    public InversionTests(ITestOutputHelper output) => _output = output;

    private static Tensor Data(int count, ulong seed) =>
        tensor(Mean, dtype: ScalarType.Float64) + tensor(Variance, dtype: ScalarType.Float64).sqrt() * SeededNoise.Normal(seed, 0, 0, count, new long[] { 3 }).to_type(ScalarType.Float64);

    private static (double RoundTrip, double Encoder) Errors(SamplerKind kind, int steps)
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var data = Data(64, 7);
        var options = new SamplerOptions(kind, steps, Spacing: kind == SamplerKind.Ddim ? SamplerSpacing.Trailing : SamplerSpacing.Karras);
        var path = EditingPath.Resolve(options, schedule, deterministic: true);
        var latents = Inversion.Encode(denoiser, data, path, options);
        var decoded = Inversion.Decode(denoiser, latents, path, options);
        // The encoder after its first step against the exact flow from that step's point x_low = data + σ²/(s² + σ²)·(data − μ):
        // x(σ_max) = μ + (x_low − μ)·√((s² + σ_max²)/(s² + σ_low²)), and the latent z = x/√(1 + σ_max²).
        double low = path.Sigmas[^2], high = path.Sigmas[0];
        var mu = tensor(Mean, dtype: ScalarType.Float64);
        var s2 = tensor(Variance, dtype: ScalarType.Float64);
        var xLow = data + low * low / (s2 + low * low) * (data - mu);
        var exact = (mu + (xLow - mu) * ((s2 + high * high) / (s2 + low * low)).sqrt()) / Math.Sqrt(1 + high * high);
        return ((decoded - data).abs().max().item<double>(), (latents - exact).abs().max().item<double>());
    }

    private static double Order(int[] steps, double[] errors)
    {
        var logN = steps.Select(n => Math.Log(n)).ToArray();
        var logE = errors.Select(e => Math.Log(e)).ToArray();
        double meanN = logN.Average(), meanE = logE.Average();
        return -logN.Zip(logE, (a, b) => (a - meanN) * (b - meanE)).Sum() / logN.Sum(a => (a - meanN) * (a - meanN));
    }

    /// <summary>
    /// The encoder runs at its solver's order; the round trip at least at that order, and one higher for the second-order
    /// solvers, whose leading error terms on the way up and on the way down (the same levels) cancel.
    /// </summary>
    [Theory]
    [InlineData(SamplerKind.Ddim, 1.0, 1.0)]
    [InlineData(SamplerKind.Euler, 1.0, 1.0)]
    [InlineData(SamplerKind.Heun, 2.0, 3.0)]
    [InlineData(SamplerKind.DpmSolver2M, 2.0, 3.0)]
    [InlineData(SamplerKind.DpmSolver3M, 3.0, 3.0)]
    [InlineData(SamplerKind.UniPc, 3.0, 3.0)]
    public void EncodeThenDecodeIsTheIdentityUpToTheSolversError(SamplerKind kind, double order, double roundTripOrder)
    {
        int[] steps = order >= 3 ? new[] { 10, 20, 40 } : new[] { 20, 40, 80 };
        var errors = steps.Select(n => Errors(kind, n)).ToArray();
        double encoderOrder = Order(steps, errors.Select(e => e.Encoder).ToArray());
        double roundTrip = Order(steps, errors.Select(e => e.RoundTrip).ToArray());
        _output.WriteLine($"{kind}: round-trip errors {string.Join(", ", errors.Select(e => e.RoundTrip.ToString("0.00e0")))}, encoder errors {string.Join(", ", errors.Select(e => e.Encoder.ToString("0.00e0")))} at {string.Join("/", steps)} steps; orders {roundTrip:0.00} and {encoderOrder:0.00}");
        Assert.InRange(encoderOrder, order - 0.3, order + 0.5);
        Assert.InRange(roundTrip, roundTripOrder - 0.3, roundTripOrder + 0.5);
    }

    [Fact]
    public void TheLatentOfGaussianDataIsStandardNormal()
    {
        // The exact flow maps N(μ, s²) at σ = 0 to N(μ, s² + σ_max²), i.e. z = x/√(1 + σ_max²) ≈ N(0, 1) for σ_max ≫ s.
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        using var scope = NewDisposeScope();
        var data = Data(20000, 8);
        var options = new SamplerOptions(SamplerKind.DpmSolver2M, 30, Spacing: SamplerSpacing.LogSnr);
        var latents = Inversion.Encode(denoiser, data, EditingPath.Resolve(options, schedule, true), options);
        double sigmaMax = schedule.Sigma(999), scale = Math.Sqrt(1 + sigmaMax * sigmaMax);
        var expectedMean = tensor(Mean, dtype: ScalarType.Float64) / scale;
        var expectedVar = (tensor(Variance, dtype: ScalarType.Float64) + sigmaMax * sigmaMax) / (scale * scale);
        Assert.True((latents.mean(new long[] { 0 }) - expectedMean).abs().max().item<double>() < 0.03);
        Assert.True(((latents.var(0) - expectedVar) / expectedVar).abs().max().item<double>() < 0.05);
    }

    [Fact]
    public void StochasticSamplersCannotInvert()
    {
        var schedule = NoiseSchedule.Linear(100);
        foreach (var options in new[] { new SamplerOptions(SamplerKind.Ddpm), new SamplerOptions(SamplerKind.EulerAncestral), new SamplerOptions(SamplerKind.Ddim, Eta: 0.5),
            new SamplerOptions(SamplerKind.Heun, Churn: new StochasticChurn(10)) })
            Assert.Contains("deterministic", Assert.Throws<DiffuseException>(() => EditingPath.Resolve(options, schedule, deterministic: true)).Message);
        // DDIM is Euler on its timesteps' levels; DDPM (σ² = β̃) is Euler ancestral on them.
        Assert.Equal(SamplerKind.Euler, EditingPath.Resolve(new SamplerOptions(SamplerKind.Ddim, 10), schedule, true).Kind);
        Assert.Equal(SamplerKind.EulerAncestral, EditingPath.Resolve(new SamplerOptions(SamplerKind.Ddpm, 10), schedule, false).Kind);
    }

    [Fact]
    public void ZeroTerminalSnrLatentsLiveAtTheLargestFiniteLevel()
    {
        var schedule = NoiseSchedule.Create(new ScheduleConfig(ScheduleKind.Linear, 1000, ZeroTerminalSnr: true));
        var path = EditingPath.Resolve(new SamplerOptions(SamplerKind.DpmSolver2M, 10, Spacing: SamplerSpacing.LogSnr), schedule, true);
        Assert.True(double.IsPositiveInfinity(path.Sigmas[0]));
        var levels = path.LatentLevels();
        Assert.Equal(path.Sigmas[1..], levels);
    }
}
