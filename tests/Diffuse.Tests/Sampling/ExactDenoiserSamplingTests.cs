using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Sampling;

public class ExactDenoiserSamplingTests
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };

    [Theory]
    [InlineData(SamplerKind.Ddpm, 0, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddpm, 0, DdpmVariance.Large, 0.0)]
    [InlineData(SamplerKind.Ddpm, 100, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddim, 0, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddim, 50, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddim, 50, DdpmVariance.Small, 1.0)]
    public void SamplersDrivenByTheExactDenoiserReproduceTheGaussian(SamplerKind kind, int steps, DdpmVariance variance, double eta)
    {
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var options = new SamplerOptions(kind, steps, SamplerSpacing.Trailing, eta, variance);
        const int count = 20_000;
        using var scope = NewDisposeScope();
        var x = Sampler.Generate(denoiser, schedule, new long[] { 2 }, count, seed: 7, options).to_type(ScalarType.Float64);
        var mean = x.mean(new long[] { 0 }).data<double>().ToArray();
        var vars = x.var(0).data<double>().ToArray();
        int[] timesteps = options.ResolveTimesteps(1000);
        for (int d = 0; d < 2; d++)
        {
            // With Gaussian data every step is linear-Gaussian, so the sampler's output law is known exactly:
            // propagate mean and variance of z through the steps (an independent scalar derivation).
            var (expectedMean, expectedVar) = PropagateLinearGaussian(schedule, timesteps, Mean[d], Variance[d], kind, variance, eta);
            double se = Math.Sqrt(expectedVar / count);
            Assert.InRange(mean[d], expectedMean - 5 * se, expectedMean + 5 * se);
            Assert.InRange(vars[d] / expectedVar, 1 - 5 * Math.Sqrt(2.0 / count), 1 + 5 * Math.Sqrt(2.0 / count));
            // And the sampler reproduces the data law: exactly in the limit of many steps, to a few percent with few.
            if (timesteps.Length == 1000)
            {
                Assert.InRange(expectedVar / Variance[d], 0.98, 1.02);
                Assert.InRange(expectedMean - Mean[d], -0.02, 0.02);
            }
        }
    }

    private static (double Mean, double Variance) PropagateLinearGaussian(NoiseSchedule schedule, int[] timesteps, double mu, double s2,
        SamplerKind kind, DdpmVariance variance, double eta)
    {
        double m = 0, v = 1;
        for (int k = 0; k < timesteps.Length; k++)
        {
            double a = schedule.AlphaBar(timesteps[k]);
            double ap = k + 1 < timesteps.Length ? schedule.AlphaBar(timesteps[k + 1]) : 1.0;
            double g = Math.Sqrt(a) * s2 / (a * s2 + 1 - a);               // x̂0 = c0 + g·z
            double c0 = mu - g * Math.Sqrt(a) * mu;
            double e1 = (1 - Math.Sqrt(a) * g) / Math.Sqrt(1 - a), e0 = -Math.Sqrt(a) * c0 / Math.Sqrt(1 - a);   // ε̂ = e0 + e1·z
            double gainZ, offset, noiseVar;
            if (kind == SamplerKind.Ddim)
            {
                double sigma2 = ap >= 1 ? 0 : eta * eta * (1 - ap) / (1 - a) * (1 - a / ap);
                double c = Math.Sqrt(1 - ap - sigma2);
                gainZ = Math.Sqrt(ap) * g + c * e1; offset = Math.Sqrt(ap) * c0 + c * e0; noiseVar = sigma2;
            }
            else
            {
                double beta = 1 - a / ap;
                double cx = Math.Sqrt(ap) * beta / (1 - a), cz = Math.Sqrt(1 - beta) * (1 - ap) / (1 - a);
                gainZ = cx * g + cz; offset = cx * c0;
                noiseVar = ap >= 1 ? 0 : variance == DdpmVariance.Small ? (1 - ap) / (1 - a) * beta : beta;
            }
            m = gainZ * m + offset;
            v = gainZ * gainZ * v + noiseVar;
        }
        return (m, v);
    }

    [Fact]
    public void SampleDependsOnlyOnItsSeedAndIndexNotOnTheBatch()
    {
        var schedule = NoiseSchedule.Linear(200);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var options = new SamplerOptions(SamplerKind.Ddpm, 50);
        using var scope = NewDisposeScope();
        var all = Sampler.Generate(denoiser, schedule, new long[] { 2 }, 10, 3, options, batchSize: 10);
        var small = Sampler.Generate(denoiser, schedule, new long[] { 2 }, 10, 3, options, batchSize: 3);
        var single = Sampler.Generate(denoiser, schedule, new long[] { 2 }, 1, 3, options, first: 7);
        Assert.True(all.eq(small).all().item<bool>());
        Assert.True(all[7].eq(single[0]).all().item<bool>());
        var otherSeed = Sampler.Generate(denoiser, schedule, new long[] { 2 }, 10, 4, options);
        Assert.False(all.eq(otherSeed).all().item<bool>());
    }

    [Fact]
    public void DdimWithExactScoreReproducesMixtureWeights()
    {
        // Two well-separated components with weights 0.3 / 0.7: DDIM (η = 0, 100 steps) must put 30% / 70% of samples in each.
        var schedule = NoiseSchedule.Linear(1000);
        double[] weights = { 0.3, 0.7 };
        var means = new double[,] { { -2.0, 0.0 }, { 2.0, 1.0 } };
        double[] variances = { 0.1, 0.2 };
        var denoiser = new GaussianMixtureDenoiser(schedule, weights, means, variances);
        const int count = 10_000;
        using var scope = NewDisposeScope();
        var x = Sampler.Generate(denoiser, schedule, new long[] { 2 }, count, 11, new SamplerOptions(SamplerKind.Ddim, 100, Eta: 0));
        double fraction = (x.select(1, 0) < 0).to_type(ScalarType.Float64).mean().item<double>();
        double se = Math.Sqrt(0.3 * 0.7 / count);
        Assert.InRange(fraction, 0.3 - 4 * se - 0.01, 0.3 + 4 * se + 0.01);
        // Each component keeps its own spread.
        var left = x.index(x.select(1, 0) < 0);
        Assert.InRange(left.select(1, 0).var().item<float>(), 0.085, 0.115);
    }

    [Fact]
    public void TimestepSpacingsGiveTheDocumentedTimesteps()
    {
        Assert.Equal(new[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 }, Timesteps.Select(1000, 10, SamplerSpacing.Trailing));
        Assert.Equal(new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }, Timesteps.Select(1000, 10, SamplerSpacing.Leading));
        Assert.Equal(new[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 }, Timesteps.Select(1000, 10, SamplerSpacing.Linspace));
        Assert.Equal(Enumerable.Range(0, 50).Reverse(), Timesteps.Select(50, 0, SamplerSpacing.Trailing));
        Assert.Throws<DiffuseException>(() => Timesteps.Validate(new[] { 5, 5 }, 10));
        Assert.Throws<DiffuseException>(() => Timesteps.Validate(new[] { 10 }, 10));
    }

    [Fact]
    public void BoundWithTheExactModelIsAboveTheExactNllAndApproachesItAsTGrows()
    {
        // Data N(μ, s²): exact NLL per dim = ½log(2πs²) + ½·E[(x−μ)²]/s², computed on the same points.
        const int count = 2000;
        using var scope = NewDisposeScope();
        var data = Diffuse.Randomness.SeededNoise.Normal(99, 0, 0, count, new long[] { 2 }).to_type(ScalarType.Float64);
        data = data * tensor(Variance).sqrt() + tensor(Mean);
        double exact = 0;
        for (int d = 0; d < 2; d++)
        {
            var col = data.select(1, d);
            exact += 0.5 * Math.Log(2 * Math.PI * Variance[d]) + 0.5 * (col - Mean[d]).square().mean().item<double>() / Variance[d];
        }
        exact /= 2;
        // The bound with σ² = β̃ is loose at small T and tightens as T grows (closed-form gaps for these data: about
        // 4.5 / 1.3 / 0.46 nats/dim at T = 10 / 100 / 1000); with σ² = β at every step, the decoder's β_1 included, it is
        // tight (about 0.05 / 0.007 / 0.001). The default decoder variance β̃_2 (the published tables' convention) is about
        // half of β_1 and costs about 0.11 nats/dim here, so the tight bound asks for β_1.
        double previousGap = double.PositiveInfinity;
        foreach (int T in new[] { 10, 100, 1000 })
        {
            var schedule = NoiseSchedule.Linear(T);
            var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
            var loose = VariationalBound.Compute(denoiser, schedule, data.to_type(ScalarType.Float32), 5, DdpmVariance.Small);
            var tight = VariationalBound.Compute(denoiser, schedule, data.to_type(ScalarType.Float32), 5, DdpmVariance.Large,
                decoderVariance: DecoderVariance.FirstBeta);
            Assert.True(loose.NatsPerDim - exact > -2 * loose.StdError, $"T={T}: bound {loose.NatsPerDim} below exact NLL {exact}");
            Assert.True(tight.NatsPerDim - exact > -2 * tight.StdError, $"T={T}: bound {tight.NatsPerDim} below exact NLL {exact}");
            double gap = loose.NatsPerDim - exact;
            Assert.True(gap < previousGap - 3 * loose.StdError, $"T={T}: gap {gap} did not shrink from {previousGap} (se {loose.StdError})");
            previousGap = gap;
            if (T == 1000) Assert.True(tight.NatsPerDim - exact < 0.01 + 3 * tight.StdError, $"tight gap at T=1000 is {tight.NatsPerDim - exact} (se {tight.StdError})");
        }
    }

    [Fact]
    public void TheStratifiedBoundIsAnUnbiasedEstimateOfTheFullBound()
    {
        // σ² = β̃ at T = 200 (a bound whose diffusion terms vary strongly with t): the full bound against the stratified
        // estimate from 8 of the 199 diffusion terms per batch of 10 points, 100 batches.
        using var scope = NewDisposeScope();
        var data = Diffuse.Randomness.SeededNoise.Normal(7, 0, 0, 1000, new long[] { 2 }) * tensor(Variance).sqrt().to_type(ScalarType.Float32) + tensor(Mean).to_type(ScalarType.Float32);
        var schedule = NoiseSchedule.Linear(200);
        var denoiser = new GaussianDenoiser(schedule, Mean, Variance);
        var full = VariationalBound.Compute(denoiser, schedule, data, 3, DdpmVariance.Small, batchSize: 10);
        var sampled = VariationalBound.Compute(denoiser, schedule, data, 3, DdpmVariance.Small, batchSize: 10, timestepSamples: 8);
        double se = Math.Sqrt(full.StdError * full.StdError + sampled.StdError * sampled.StdError);
        Assert.True(Math.Abs(sampled.NatsPerDim - full.NatsPerDim) < 3 * se, $"stratified {sampled.NatsPerDim} ± {sampled.StdError} vs full {full.NatsPerDim} ± {full.StdError}");
        Assert.Equal(full.PriorNatsPerDim, sampled.PriorNatsPerDim, 6);
        Assert.Equal(full.DecoderNatsPerDim, sampled.DecoderNatsPerDim, 6);

        var (steps, weights) = VariationalBound.TimestepsOfBatch(200, 8, 3, 0);
        Assert.Equal(0, steps[0]);
        Assert.Equal(200.0, weights.Sum());
        for (int j = 1; j < steps.Length; j++) Assert.True(steps[j] > steps[j - 1] && steps[j] < 200);
        Assert.Equal(Enumerable.Range(0, 200), VariationalBound.TimestepsOfBatch(200, 0, 3, 0).Steps);
    }
}
