using Diffuse.Formulations;
using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using Diffuse.Tests.Parameterization;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Training;

public class HybridLossTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(50);

    private static (Tensor X0, Tensor Z, Tensor Timesteps) Batch(int[] timesteps)
    {
        var x0 = ExactGaussianNetwork.Data(1, timesteps.Length);
        var alphaBar = tensor(timesteps.Select(n => (float)Schedule.AlphaBar(n)).ToArray()).unsqueeze(1);
        var z = GaussianProcess.Noise(x0, alphaBar, SeededNoise.Normal(1, 1, 0, timesteps.Length, new long[] { 2 }));
        return (x0, z, tensor(timesteps.Select(n => (long)n).ToArray()));
    }

    [Fact]
    public void TheKlTermVanishesForTheTrueMeanAndPosteriorVarianceAndHasItsClosedFormOtherwise()
    {
        using var scope = NewDisposeScope();
        int[] timesteps = { 1, 5, 20, 49 };
        var (x0, z, t) = Batch(timesteps);
        // x0 itself as the prediction and f = 0 (Σ = β̃): the model is the true posterior.
        var zero = HybridLoss.VlbTerm(Schedule, Prediction.X0, x0, z, t, x0, full_like(x0, -1.0));
        Assert.True(zero.abs().max().item<float>() < 1e-6f);
        // The exact denoiser's x̂0 and f = 0.3: per element ½(log Σ − log β̃ + β̃/Σ − 1) + ½·c²·(x0 − x̂0)²/Σ.
        var exact = new GaussianDenoiser(Schedule, ExactGaussianNetwork.Mean, ExactGaussianNetwork.Variance);
        const double f = 0.3;
        var x0Hat = cat(timesteps.Select((n, i) => exact.Denoise(z.narrow(0, i, 1), n).X0).ToArray());
        var term = HybridLoss.VlbTerm(Schedule, Prediction.X0, x0, z, t, x0Hat, full_like(x0, 2 * f - 1)).data<float>().ToArray();
        for (int i = 0; i < timesteps.Length; i++)
        {
            int n = timesteps[i];
            var post = GaussianProcess.Posterior(Schedule.AlphaBar(n), Schedule.AlphaBar(n - 1));
            double logSigma2 = f * Math.Log(post.StepBeta) + (1 - f) * Math.Log(post.Variance), sigma2 = Math.Exp(logSigma2);
            double expected = 0;
            for (int d = 0; d < 2; d++)
            {
                double diff = post.X0Coef * (x0[i, d].item<float>() - x0Hat[i, d].item<float>());
                expected += 0.5 * (logSigma2 - Math.Log(post.Variance) + post.Variance / sigma2 - 1) + 0.5 * diff * diff / sigma2;
            }
            Assert.Equal(expected / 2, term[i], 4);
        }
    }

    [Fact]
    public void TheTermsSummedOverTimestepsAreTheVariationalBound()
    {
        using var scope = NewDisposeScope();
        const int count = 32;
        const ulong seed = 9;
        static Tensor V(Tensor z) => 0.7 * (3 * z).sin();
        var denoiser = ExactGaussianNetwork.Denoiser(Schedule, V);
        var network = new ExactGaussianNetwork(Schedule, V);
        var data = ExactGaussianNetwork.Data(2, count);
        var bound = VariationalBound.Compute(denoiser, Schedule, data, seed);
        // The same z_t as the bound draws: stream n of the seed at every timestep index n.
        var total = zeros(count, dtype: ScalarType.Float64);
        for (int n = 0; n < Schedule.Timesteps; n++)
        {
            var z = VariationalBound.NoisedState(data, Schedule.AlphaBar(n), SeededNoise.Normal(seed, (ulong)n, 0, count, new long[] { 2 }));
            var (prediction, v) = LearnedVariance.Split(network.call(z, full(count, (float)n)), 2);
            total += HybridLoss.VlbTerm(Schedule, Prediction.X0, data, z, full(count, (long)n), prediction, v.to_type(ScalarType.Float64));
        }
        Assert.Equal(bound.DiffusionNatsPerDim + bound.DecoderNatsPerDim, total.mean().item<double>(), 5);
    }

    [Fact]
    public void OnlyTheVarianceOutputReceivesAGradient()
    {
        using var scope = NewDisposeScope();
        var (x0, z, t) = Batch(new[] { 0, 3, 30 });
        var prediction = (x0 + 0.1).detach().requires_grad_();
        var v = zeros_like(x0).requires_grad_();
        var simple = (prediction - x0).square().mean(new long[] { 1 });
        var vlb = HybridLoss.VlbTerm(Schedule, Prediction.X0, x0, z, t, prediction, v);
        Assert.True(vlb.isfinite().all().item<bool>());
        vlb.sum().backward();
        Assert.True(prediction.grad is null || prediction.grad.abs().max().item<float>() == 0);
        Assert.True(v.grad!.abs().min().item<float>() > 0);
        // eq. 16 with λ = 0.001 on the bound in bits: L_simple + λ·T·L_t/ln 2.
        var combined = HybridLoss.Combine(simple, vlb, Schedule.Timesteps);
        Assert.True(combined.allclose(simple + 0.001 * 50 / Math.Log(2) * vlb));
    }

    [Fact]
    public void TheDecoderTermAtTheFirstTimestepUsesTheLearnedVariance()
    {
        using var scope = NewDisposeScope();
        var (x0, z, t) = Batch(new[] { 0, 0 });
        var x0Hat = x0 + 0.05;
        var v = tensor(new float[,] { { 1, 1 }, { -0.5f, 0.2f } });
        var term = HybridLoss.VlbTerm(Schedule, Prediction.X0, x0, z, t, x0Hat, v);
        var bounds = LearnedVariance.StepLogVariances(Schedule, 0);
        var variance = LearnedVariance.LogVariance(LearnedVariance.Fraction(v.to_type(ScalarType.Float64)), bounds).exp();
        var expected = new GaussianDecoder().NegativeLogLikelihood(x0, x0Hat, variance) / 2;
        Assert.True(term.to_type(ScalarType.Float64).allclose(expected, rtol: 1e-5, atol: 1e-6));
        // f = 1 is the fixed decoder of variance β_1.
        Assert.Equal(new GaussianDecoder().NegativeLogLikelihood(x0, x0Hat, Schedule.Betas[0])[0].item<double>() / 2, term[0].item<float>(), 4);
    }

    [Fact]
    public void TheDecodersAcceptAVariancePerElement()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new[,] { { -1.0, 0.0, 127 / 127.5 - 1 }, { 1.0, 0.5, -0.2 } });
        var mean = x + 0.003;
        var variance = tensor(new[,] { { 1e-4, 4e-4, 1e-3 }, { 2e-4, 1e-4, 5e-4 } });
        foreach (IDataDecoder decoder in new IDataDecoder[] { new GaussianDecoder(), new DiscretizedGaussianDecoder() })
        {
            // A constant variance gives the scalar form; a variance per element sums the per-column scalar forms.
            Assert.True(decoder.NegativeLogLikelihood(x, mean, full_like(x, 3e-4)).allclose(decoder.NegativeLogLikelihood(x, mean, 3e-4), rtol: 1e-12));
            var sum = zeros(2, dtype: ScalarType.Float64);
            for (int d = 0; d < 3; d++)
                for (int i = 0; i < 2; i++)
                    sum[i] += decoder.NegativeLogLikelihood(x[i, d].view(1, 1), mean[i, d].view(1, 1), variance[i, d].item<double>())[0];
            Assert.True(decoder.NegativeLogLikelihood(x, mean, variance).allclose(sum, rtol: 1e-12));
        }
    }

    [Fact]
    public void ImportanceSamplingIsUniformUntilEveryTimestepHasTenValues()
    {
        var importance = new TimestepImportance(4);
        for (int round = 0; round < TimestepImportance.HistoryLength; round++)
        {
            Assert.False(importance.IsWarm);
            var (t, w) = importance.Sample(new[] { 0.0, 0.3, 0.6, 0.99 });
            Assert.Equal(new long[] { 0, 1, 2, 3 }, t);
            Assert.All(w, weight => Assert.Equal(1.0, weight));
            Assert.All(importance.Probabilities(), p => Assert.Equal(0.25, p));
            importance.Record(new long[] { 0, 1, 2 }, new[] { 1.0, 2.0, 3.0 });
        }
        Assert.False(importance.IsWarm);   // timestep 3 has no values yet
        for (int round = 0; round < TimestepImportance.HistoryLength; round++) importance.Record(new long[] { 3 }, new[] { 4.0 });
        Assert.True(importance.IsWarm);
    }

    [Fact]
    public void AfterWarmUpTimestepsAreDrawnInProportionToTheRootMeanSquareLoss()
    {
        const int T = 3;
        const double u = TimestepImportance.DefaultUniformShare;
        var importance = new TimestepImportance(T);
        // Timestep 0: ten values of 1 after five older values of 100 (dropped); 1: alternating 1 and 3; 2: ten values of 2.
        for (int k = 0; k < 5; k++) importance.Record(new long[] { 0 }, new[] { 100.0 });
        for (int k = 0; k < TimestepImportance.HistoryLength; k++)
            importance.Record(new long[] { 0, 1, 2 }, new[] { 1.0, k % 2 == 0 ? 1.0 : 3.0, 2.0 });
        double[] rms = { 1, Math.Sqrt(5), 2 };
        double[] expected = rms.Select(r => (1 - u) * r / rms.Sum() + u / T).ToArray();
        var p = importance.Probabilities();
        for (int n = 0; n < T; n++) Assert.Equal(expected[n], p[n], 12);
        // Inverse-CDF draws: just below and above each boundary of the cumulative distribution.
        double c0 = expected[0], c1 = expected[0] + expected[1];
        var (t, w) = importance.Sample(new[] { c0 - 1e-9, c0 + 1e-9, c1 - 1e-9, c1 + 1e-9, 0.999999 });
        Assert.Equal(new long[] { 0, 1, 1, 2, 2 }, t);
        for (int i = 0; i < t.Length; i++) Assert.Equal(1 / (T * expected[t[i]]), w[i], 10);
        // The state survives a checkpoint.
        using var state = importance.ToState();
        Assert.Equal(new long[] { T, 1 + TimestepImportance.HistoryLength }, state.shape);
        var restored = TimestepImportance.FromState(state);
        Assert.Equal(p, restored.Probabilities());
        using var bad = zeros(T, 4, dtype: ScalarType.Float64);
        Assert.Throws<DiffuseException>(() => TimestepImportance.FromState(bad));
    }
}
