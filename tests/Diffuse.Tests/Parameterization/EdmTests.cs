using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Parameterization;

public class EdmTests
{
    private const double SigmaData = 0.5;
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };

    /// <summary>
    /// A stand-in for a perfectly trained raw network: it recovers σ from c_noise = ¼·ln σ and x from c_in·x, asks an exact
    /// denoiser for D* = E[x0 | x] and returns F* = (D* − c_skip·x)/c_out, the output that makes the EDM denoiser exact.
    /// </summary>
    private sealed class IdealNetwork : nn.Module<Tensor, Tensor, Tensor?, Tensor>
    {
        private readonly Func<Tensor, double, Tensor?, Tensor> _exactX0;

        public IdealNetwork(Func<Tensor, double, Tensor?, Tensor> exactX0) : base("ideal") => _exactX0 = exactX0;

        public override Tensor forward(Tensor input, Tensor conditioning, Tensor? classes)
        {
            using var scope = NewDisposeScope();
            double sigma = Math.Exp(4 * conditioning[0].item<float>());
            Assert.True(conditioning.eq(conditioning[0]).all().item<bool>());
            var x = input.to_type(ScalarType.Float64) / EdmPreconditioning.CIn(sigma, SigmaData);
            var x0 = _exactX0(x / Math.Sqrt(1 + sigma * sigma), sigma, classes).to_type(ScalarType.Float64);
            var f = (x0 - EdmPreconditioning.CSkip(sigma, SigmaData) * x) / EdmPreconditioning.COut(sigma, SigmaData);
            return f.to_type(input.dtype).MoveToOuterDisposeScope();
        }
    }

    private sealed class IdealUnconditionalNetwork : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly IdealNetwork _inner;

        public IdealUnconditionalNetwork(ISigmaDenoiser exact) : base("ideal") =>
            _inner = new IdealNetwork((z, sigma, _) => exact.DenoiseAtSigma(z, sigma).X0);

        public override Tensor forward(Tensor input, Tensor conditioning) => _inner.forward(input, conditioning, null);
    }

    [Theory]
    [InlineData(0.002)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(3.0)]
    [InlineData(80.0)]
    public void TheIdealRawOutputMakesTheDenoiserReturnX0Exactly(double sigmaValue)
    {
        using var scope = NewDisposeScope();
        var x0 = SeededNoise.Normal(1, 0, 0, 64, new long[] { 3 }).to_type(ScalarType.Float64);
        var sigma = full(64, sigmaValue, dtype: ScalarType.Float64);
        var noise = EdmTraining.Noise(SeededNoise.Normal(1, 1, 0, 64, new long[] { 3 }).to_type(ScalarType.Float64), sigma);
        var ideal = EdmTraining.Target(x0, noise, sigma, SigmaData);
        // D = c_skip·x + c_out·F*, with x = x0 + n.
        var denoised = EdmPreconditioning.CSkip(sigmaValue, SigmaData) * (x0 + noise) + EdmPreconditioning.COut(sigmaValue, SigmaData) * ideal;
        Assert.True(denoised.allclose(x0, rtol: 1e-10, atol: 1e-10));
        Assert.Equal(0.0, EdmTraining.Loss(ideal, x0, noise, sigma, SigmaData).max().item<double>(), 15);
    }

    [Fact]
    public void ThePreconditioningHasTheLimitsAndValuesOfTable1()
    {
        // σ → 0: the denoiser passes its input through; σ → ∞: it trusts the network alone, scaled to σ_d.
        Assert.Equal(1.0, EdmPreconditioning.CSkip(1e-8, SigmaData), 12);
        Assert.Equal(0.0, EdmPreconditioning.COut(1e-8, SigmaData), 7);
        Assert.Equal(0.0, EdmPreconditioning.CSkip(1e8, SigmaData), 12);
        Assert.Equal(SigmaData, EdmPreconditioning.COut(1e8, SigmaData), 12);
        // At σ = σ_d the input and the target weigh the same.
        Assert.Equal(0.5, EdmPreconditioning.CSkip(SigmaData, SigmaData), 15);
        Assert.Equal(SigmaData / Math.Sqrt(2), EdmPreconditioning.COut(SigmaData, SigmaData), 15);
        Assert.Equal(1 / (SigmaData * Math.Sqrt(2)), EdmPreconditioning.CIn(SigmaData, SigmaData), 15);
        Assert.Equal(0.25 * Math.Log(80), EdmPreconditioning.CNoise(80), 15);
        foreach (double sigma in new[] { 0.002, 0.3, 1.0, 7.0, 80.0 })
        {
            // λ·c_out² = 1: every σ contributes with unit weight (§5), and c_in gives x = x0 + n unit variance when Var x0 = σ_d².
            Assert.Equal(1.0, EdmPreconditioning.LossWeight(sigma, SigmaData) * Math.Pow(EdmPreconditioning.COut(sigma, SigmaData), 2), 12);
            Assert.Equal(1.0, Math.Pow(EdmPreconditioning.CIn(sigma, SigmaData), 2) * (SigmaData * SigmaData + sigma * sigma), 12);
            // The tensor forms agree with the scalar ones.
            using var s = tensor(sigma);
            Assert.Equal(EdmPreconditioning.CSkip(sigma, SigmaData), EdmPreconditioning.CSkip(s, SigmaData).item<double>(), 14);
            Assert.Equal(EdmPreconditioning.COut(sigma, SigmaData), EdmPreconditioning.COut(s, SigmaData).item<double>(), 14);
            Assert.Equal(EdmPreconditioning.CIn(sigma, SigmaData), EdmPreconditioning.CIn(s, SigmaData).item<double>(), 14);
            Assert.Equal(EdmPreconditioning.CNoise(sigma), EdmPreconditioning.CNoise(s).item<double>(), 14);
            Assert.Equal(EdmPreconditioning.LossWeight(sigma, SigmaData), EdmPreconditioning.LossWeight(s, SigmaData).item<double>(), 8);
        }
    }

    [Fact]
    public void TheLossEqualsTheWeightedDenoisingError()
    {
        using var scope = NewDisposeScope();
        var x0 = SeededNoise.Normal(2, 0, 0, 32, new long[] { 2, 3 }).to_type(ScalarType.Float64) * SigmaData;
        var sigma = EdmTraining.SampleSigma(SeededNoise.Normal(2, 1, 0, 32, ReadOnlySpan<long>.Empty).to_type(ScalarType.Float64), new EdmConfig());
        var noise = EdmTraining.Noise(SeededNoise.Normal(2, 2, 0, 32, new long[] { 2, 3 }).to_type(ScalarType.Float64), sigma);
        var output = SeededNoise.Normal(2, 3, 0, 32, new long[] { 2, 3 }).to_type(ScalarType.Float64);   // an arbitrary raw output
        var s = sigma.view(-1, 1, 1);
        var denoised = EdmPreconditioning.CSkip(s, SigmaData) * (x0 + noise) + EdmPreconditioning.COut(s, SigmaData) * output;
        var expected = EdmPreconditioning.LossWeight(sigma, SigmaData) * (denoised - x0).square().flatten(1).mean(new long[] { 1 });
        var loss = EdmTraining.Loss(output, x0, noise, sigma, SigmaData);
        Assert.Equal(new long[] { 32 }, loss.shape);
        Assert.True(loss.allclose(expected, rtol: 1e-9, atol: 1e-12));
        // The network input is c_in·(x0 + n) per row, and the conditioning ¼·ln σ.
        var (input, conditioning) = EdmPreconditioning.NetworkInputs(x0 + noise, sigma, SigmaData);
        Assert.True(input.allclose((x0 + noise) / (s.square() + SigmaData * SigmaData).sqrt()));
        Assert.True(conditioning.allclose((sigma.log() / 4).to_type(ScalarType.Float32)));
        // The denoiser of eq. 7 composed from the same output is the one the loss compares with x0.
        Assert.True(EdmPreconditioning.Denoised(x0 + noise, output, sigma, SigmaData).allclose(denoised, rtol: 1e-12, atol: 1e-12));
    }

    [Fact]
    public void TrainingNoiseLevelsAreLogNormal()
    {
        using var scope = NewDisposeScope();
        const int count = 100_000;
        var config = new EdmConfig(PMean: -1.2, PStd: 1.2);
        var logSigma = EdmTraining.SampleSigma(SeededNoise.Normal(3, 0, 0, count, ReadOnlySpan<long>.Empty), config).to_type(ScalarType.Float64).log();
        double se = config.PStd / Math.Sqrt(count);
        Assert.InRange(logSigma.mean().item<double>(), config.PMean - 5 * se, config.PMean + 5 * se);
        Assert.InRange(logSigma.std().item<double>() / config.PStd, 1 - 5 * Math.Sqrt(0.5 / count), 1 + 5 * Math.Sqrt(0.5 / count));
    }

    [Theory]
    [InlineData(0.002)]
    [InlineData(0.05)]
    [InlineData(1.0)]
    [InlineData(80.0)]
    public void TheDenoiserWithTheIdealNetworkIsTheExactGaussianDenoiser(double sigma)
    {
        using var scope = NewDisposeScope();
        var config = new EdmConfig(SigmaData: SigmaData);
        var schedule = config.Schedule(100);
        var exact = new GaussianDenoiser(schedule, Mean, Variance);
        var denoiser = new EdmDenoiser(new IdealUnconditionalNetwork(exact), schedule, config);
        var z = SeededNoise.Normal(4, 0, 0, 256, new long[] { 2 });
        var got = denoiser.DenoiseAtSigma(z, sigma);
        var want = exact.DenoiseAtSigma(z, sigma);
        Assert.True(got.X0.allclose(want.X0, rtol: 1e-4, atol: 1e-4));
        Assert.True(got.Eps.allclose(want.Eps, rtol: 1e-3, atol: 1e-3));
        // At a discrete timestep it works at the schedule's σ of that timestep.
        int n = (int)Math.Round(schedule.TimestepOfSigma(sigma));
        Assert.True(denoiser.Denoise(z, n).X0.allclose(exact.Denoise(z, n).X0, rtol: 1e-4, atol: 1e-4));
    }

    [Fact]
    public void TheScheduleSpansTheConfiguredNoiseRange()
    {
        var config = new EdmConfig();
        var schedule = config.Schedule(200);
        Assert.Equal(config.SigmaMin, schedule.Sigma(0), 9);
        Assert.Equal(config.SigmaMax, schedule.Sigma(199), 6);
        // Uniform in log σ.
        Assert.Equal(Math.Log(config.SigmaMax / config.SigmaMin) / 199, Math.Log(schedule.Sigma(100) / schedule.Sigma(99)), 6);
    }

    [Fact]
    public void AClassConditionalNetworkSupportsGuidance()
    {
        using var scope = NewDisposeScope();
        var config = new EdmConfig(SigmaData: SigmaData);
        var schedule = config.Schedule(100);
        var mixture = new GaussianMixtureDenoiser(schedule, new[] { 0.5, 0.5 }, new double[,] { { -2, 0 }, { 2, 0 } }, new[] { 0.2, 0.2 });
        const long nullClass = 2;
        // The network reads its null class as "no class"; the mixture reads −1.
        var network = new IdealNetwork((z, sigma, classes) => mixture.DenoiseAtSigma(z, sigma, classes?.masked_fill(classes == nullClass, -1)).X0);
        var denoiser = new EdmDenoiser(ConditionedNetwork.WithClasses(network, nullClass), schedule, config);
        var z = SeededNoise.Normal(5, 0, 0, 16, new long[] { 2 });
        var classes = tensor(Enumerable.Range(0, 16).Select(i => (long)(i % 2)).ToArray());
        foreach (double sigma in new[] { 0.3, 2.0 })
        {
            var got = new ClassifierFreeGuidance(denoiser, classes, 3).DenoiseAtSigma(z, sigma);
            var want = new ClassifierFreeGuidance(mixture, classes, 3).DenoiseAtSigma(z, sigma);
            Assert.True(got.X0.allclose(want.X0, rtol: 1e-3, atol: 1e-3));
        }
        var unconditional = new EdmDenoiser(new IdealUnconditionalNetwork(mixture), schedule, config);
        Assert.Throws<DiffuseException>(() => unconditional.Denoise(z, 10, classes));
    }

    [Theory]
    [InlineData(0.0, -1.2, 1.2, 0.002, 80.0, "σ_data")]
    [InlineData(0.5, double.NaN, 1.2, 0.002, 80.0, "P_mean")]
    [InlineData(0.5, -1.2, 0.0, 0.002, 80.0, "P_std")]
    [InlineData(0.5, -1.2, 1.2, 0.0, 80.0, "σ_min")]
    [InlineData(0.5, -1.2, 1.2, 1.0, 0.5, "σ_max")]
    public void InvalidSettingsAreNamed(double sigmaData, double pMean, double pStd, double sigmaMin, double sigmaMax, string named)
    {
        var error = Assert.Throws<DiffuseException>(() => new EdmConfig(sigmaData, pMean, pStd, sigmaMin, sigmaMax).Validate());
        Assert.Contains(named, error.Message);
    }
}
