using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Randomness;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.Likelihoods;

public class OdeLikelihoodTests
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000);

    /// <summary>Rows of N(Mean, diag(Variance)) in float64.</summary>
    private static Tensor GaussianData(int count, ulong seed = 99) =>
        SeededNoise.Normal(seed, 0, 0, count, new long[] { 2 }).to_type(ScalarType.Float64) * tensor(Variance).sqrt() + tensor(Mean);

    private static double[] Rows(Tensor data) => data.data<double>().ToArray();

    /// <summary>
    /// The exact NLL per dimension under the continuous probability-flow ODE of the exact Gaussian denoiser: the flow is
    /// affine per dimension, x(σ) = μ + (x − μ)·√((s² + σ²)/(s² + σ_min²)), so the model density at x is the prior
    /// N(0, 1 + σ_max²) at x(σ_max) times the Jacobian Π √((s² + σ_max²)/(s² + σ_min²)).
    /// </summary>
    private static double[] FlowNll(double[] rows, double sigmaMin, double sigmaMax)
    {
        int count = rows.Length / 2;
        var result = new double[count];
        double priorVariance = 1 + sigmaMax * sigmaMax;
        for (int i = 0; i < count; i++)
        {
            double nll = 0;
            for (int d = 0; d < 2; d++)
            {
                double gain = Math.Sqrt((Variance[d] + sigmaMax * sigmaMax) / (Variance[d] + sigmaMin * sigmaMin));
                double end = Mean[d] + (rows[2 * i + d] - Mean[d]) * gain;
                nll += 0.5 * Math.Log(2 * Math.PI * priorVariance) + 0.5 * end * end / priorVariance - Math.Log(gain);
            }
            result[i] = nll / 2;
        }
        return result;
    }

    /// <summary>The NLL per dimension of each row under the data law N(Mean, diag(Variance)) itself.</summary>
    private static double[] DataNll(double[] rows)
    {
        int count = rows.Length / 2;
        var result = new double[count];
        for (int i = 0; i < count; i++)
            for (int d = 0; d < 2; d++)
                result[i] += (0.5 * Math.Log(2 * Math.PI * Variance[d]) + 0.5 * Math.Pow(rows[2 * i + d] - Mean[d], 2) / Variance[d]) / 2;
        return result;
    }

    [Fact]
    public void GaussianWithExactTraceMatchesTheAnalyticFlowPointByPointAndTheDataNll()
    {
        using var scope = NewDisposeScope();
        var data = GaussianData(400);
        var rows = Rows(data);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        var result = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(ExactTrace: true), seed: 1);
        var (sigmaMin, sigmaMax) = OdeLikelihood.SigmaRange(Schedule);
        var flow = FlowNll(rows, sigmaMin, sigmaMax);
        for (int i = 0; i < 400; i++)
            Assert.True(Math.Abs(result.NatsPerPoint[i] - flow[i]) < 5e-5, $"row {i}: ODE {result.NatsPerPoint[i]} vs analytic flow {flow[i]}");
        // The flow's density differs from the data law only by the prior at σ_max (which ignores the mean μ: about
        // μ·(x̄ − μ)/(s·σ_max) ≈ 5·10⁻⁴ on average here) and the smoothing by σ_min (second order): small.
        double exact = DataNll(rows).Average();
        Assert.True(Math.Abs(result.NatsPerDim - exact) < 2e-3, $"ODE {result.NatsPerDim} vs exact {exact}");
        Assert.Equal(400, result.Count);
        Assert.Equal(2, result.Dimensions);
        Assert.Equal(400, result.FunctionEvaluations);
        Assert.Equal(result.NatsPerDim, result.PriorNatsPerDim + result.FlowNatsPerDim + result.UnitsNatsPerDim, 10);
        Assert.Contains("RK4", result.Method);
    }

    [Fact]
    public void GaussianWithHutchinsonMatchesTheAnalyticNllWithinMonteCarloError()
    {
        using var scope = NewDisposeScope();
        const int count = 400;
        var data = GaussianData(count);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        var exactTrace = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(ExactTrace: true), seed: 1);
        double exact = DataNll(Rows(data)).Average();

        // Rademacher probes are exact for the diagonal Jacobian of independent dimensions.
        var rademacher = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(), seed: 1);
        for (int i = 0; i < count; i++) Assert.Equal(exactTrace.NatsPerPoint[i], rademacher.NatsPerPoint[i], 9);

        // Gaussian probes are not: the mean is within Monte-Carlo error of the exact value, and more probes shrink the noise.
        double previousSpread = double.PositiveInfinity;
        foreach (int probes in new[] { 1, 4 })
        {
            var gaussian = OdeLikelihood.Compute(denoiser, Schedule, data,
                new OdeLikelihoodOptions(HutchinsonSamples: probes, Probe: HutchinsonProbe.Gaussian), seed: 1);
            var noise = gaussian.NatsPerPoint.Zip(exactTrace.NatsPerPoint, (a, b) => a - b).ToArray();
            double spread = Math.Sqrt(noise.Select(v => v * v).Average());
            double se = spread / Math.Sqrt(count);
            Assert.True(spread > 1e-3, $"{probes} Gaussian probes should be noisy (rms {spread})");
            Assert.True(Math.Abs(gaussian.NatsPerDim - exact) < 4 * se + 2e-4, $"{probes} probes: ODE {gaussian.NatsPerDim} vs exact {exact} (se {se})");
            Assert.True(spread < 0.7 * previousSpread, $"{probes} probes: noise {spread} did not shrink from {previousSpread}");
            previousSpread = spread;
        }
    }

    [Fact]
    public void MixtureNllMatchesTheAnalyticMixtureDensity()
    {
        // 0.3·N((−1.4, 0.7), 0.2·I) + 0.7·N((0.6, −0.3), 0.5·I), whose mean is 0: the prior N(0, (1 + σ_max²)·I) then
        // differs from the true law at σ_max only at second order in 1/σ_max (a mean m would shift each point's
        // log-density by about x(σ_max)·m/σ_max² ≈ m/σ_max, some 10⁻³ here).
        double[] weights = { 0.3, 0.7 };
        double[,] means = { { -1.4, 0.7 }, { 0.6, -0.3 } };
        double[] variances = { 0.2, 0.5 };
        const int count = 300;
        using var scope = NewDisposeScope();
        var component = new int[count];
        for (int i = 0; i < count; i++) component[i] = SeededNoise.Uniform(5, 0, (ulong)i) < weights[0] ? 0 : 1;
        var normal = SeededNoise.Normal(5, 1, 0, count, new long[] { 2 }).to_type(ScalarType.Float64).data<double>().ToArray();
        var rows = new double[count * 2];
        for (int i = 0; i < count; i++)
            for (int d = 0; d < 2; d++)
                rows[2 * i + d] = means[component[i], d] + Math.Sqrt(variances[component[i]]) * normal[2 * i + d];
        var data = tensor(rows, new long[] { count, 2 }, ScalarType.Float64);
        var denoiser = new GaussianMixtureDenoiser(Schedule, weights, means, variances);
        var (sigmaMin, _) = OdeLikelihood.SigmaRange(Schedule);

        // The density the flow transports to: the mixture smoothed by N(0, σ_min²·I).
        var reference = new double[count];
        for (int i = 0; i < count; i++)
        {
            double density = 0;
            for (int k = 0; k < 2; k++)
            {
                double v = variances[k] + sigmaMin * sigmaMin;
                double sq = Math.Pow(rows[2 * i] - means[k, 0], 2) + Math.Pow(rows[2 * i + 1] - means[k, 1], 2);
                density += weights[k] * Math.Exp(-0.5 * sq / v) / (2 * Math.PI * v);
            }
            reference[i] = -Math.Log(density) / 2;
        }
        var exactTrace = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(ExactTrace: true), seed: 2);
        for (int i = 0; i < count; i++)
            Assert.True(Math.Abs(exactTrace.NatsPerPoint[i] - reference[i]) < 1e-3, $"row {i}: ODE {exactTrace.NatsPerPoint[i]} vs mixture {reference[i]}");

        var hutchinson = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(), seed: 2);
        var noise = hutchinson.NatsPerPoint.Zip(exactTrace.NatsPerPoint, (a, b) => a - b).ToArray();
        double se = Math.Sqrt(noise.Select(v => v * v).Average() / count);
        Assert.True(Math.Abs(hutchinson.NatsPerDim - reference.Average()) < 4 * se + 1e-3,
            $"Hutchinson {hutchinson.NatsPerDim} vs mixture {reference.Average()} (se {se})");
    }

    [Fact]
    public void FixedStepErrorShrinksAtFourthOrderAndTheAdaptiveSolverMeetsItsTolerance()
    {
        using var scope = NewDisposeScope();
        var data = GaussianData(50);
        var rows = Rows(data);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        var (sigmaMin, sigmaMax) = OdeLikelihood.SigmaRange(Schedule);
        var reference = FlowNll(rows, sigmaMin, sigmaMax);
        double MaxError(LikelihoodResult r) => r.NatsPerPoint.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
        var errors = new[] { 4, 8, 16 }.Select(steps =>
            MaxError(OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(steps, ExactTrace: true), seed: 0))).ToArray();
        // RK4: halving the step divides the error by about 2⁴ = 16 once the steps resolve the flow.
        Assert.True(errors[1] < errors[0] / 4, $"errors {string.Join(", ", errors)}");
        Assert.True(errors[2] < errors[1] / 8, $"errors {string.Join(", ", errors)}");

        var adaptive = OdeLikelihood.Compute(denoiser, Schedule, data,
            new OdeLikelihoodOptions(Adaptive: true, Rtol: 1e-6, Atol: 1e-6, ExactTrace: true), seed: 0);
        Assert.True(MaxError(adaptive) < 1e-4, $"adaptive error {MaxError(adaptive)}");
        Assert.Contains("Dormand", adaptive.Method);
    }

    [Fact]
    public void DequantisedEightBitDataGiveBitsPerDimWithTheBinConstant()
    {
        // 8-bit values k/127.5 − 1 from N(0, 0.25²), modelled by the exact Gaussian denoiser: the discrete NLL is
        // −log p(x) − log(2/255) per value to within the density's curvature over one bin.
        double[] mean = { 0, 0 }, variance = { 0.0625, 0.0625 };
        const int count = 300;
        using var scope = NewDisposeScope();
        var continuous = SeededNoise.Normal(3, 0, 0, count, new long[] { 2 }).to_type(ScalarType.Float64) * 0.25;
        var data = (((continuous + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1).to_type(ScalarType.Float64);
        var rows = Rows(data);
        double expected = 0;
        foreach (double v in rows) expected += 0.5 * Math.Log(2 * Math.PI * variance[0]) + 0.5 * v * v / variance[0];
        expected = expected / rows.Length + Math.Log(127.5);
        var denoiser = new GaussianDenoiser(Schedule, mean, variance);
        var result = OdeLikelihood.Compute(denoiser, Schedule, data, new OdeLikelihoodOptions(Steps: 40, Dequantize: true), seed: 4);
        Assert.Equal(Math.Log(127.5), result.UnitsNatsPerDim, 12);
        Assert.True(Math.Abs(result.NatsPerDim - expected) < 3e-3, $"dequantised {result.NatsPerDim} vs discrete {expected}");
        Assert.Equal(result.NatsPerDim / Math.Log(2), result.BitsPerDim, 12);

        var offGrid = data + 0.001;
        var error = Assert.Throws<DiffuseException>(() =>
            OdeLikelihood.Compute(denoiser, Schedule, offGrid, new OdeLikelihoodOptions(Dequantize: true), seed: 4));
        Assert.Contains("8-bit", error.Message);
    }

    [Fact]
    public void LogScaleMovesTheResultToOriginalUnits()
    {
        using var scope = NewDisposeScope();
        var data = GaussianData(20);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        var options = new OdeLikelihoodOptions(Steps: 10);
        var plain = OdeLikelihood.Compute(denoiser, Schedule, data, options, seed: 0);
        var scaled = OdeLikelihood.Compute(denoiser, Schedule, data, options, seed: 0, logScalePerDim: 0.75);
        Assert.Equal(plain.NatsPerDim + 0.75, scaled.NatsPerDim, 10);
        Assert.Equal(plain.StdError, scaled.StdError, 10);
    }

    [Fact]
    public void InvalidSettingsAreUserErrors()
    {
        using var scope = NewDisposeScope();
        var data = GaussianData(10);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        void Fails(OdeLikelihoodOptions options, string fragment, Tensor? input = null, double logScale = 0) =>
            Assert.Contains(fragment, Assert.Throws<DiffuseException>(() =>
                OdeLikelihood.Compute(denoiser, Schedule, input ?? data, options, 0, logScale)).Message);
        Fails(new OdeLikelihoodOptions(Steps: 0), "step");
        Fails(new OdeLikelihoodOptions(HutchinsonSamples: 0), "probe");
        Fails(new OdeLikelihoodOptions(Adaptive: true, Rtol: 0), "tolerance");
        Fails(new OdeLikelihoodOptions(SigmaMin: 1e6), "σ_min");
        Fails(new OdeLikelihoodOptions(), "two data points", data.narrow(0, 0, 1));
        Fails(new OdeLikelihoodOptions(ExactTrace: true), "too many", zeros(4, 300, dtype: ScalarType.Float64));
        Fails(new OdeLikelihoodOptions(Dequantize: true), "no change of units", logScale: 0.5);
        // Zero terminal SNR: the flow ends at the largest finite level.
        var zsnr = Schedule.WithZeroTerminalSnr();
        Assert.Equal(zsnr.Sigma(998), OdeLikelihood.SigmaRange(zsnr).SigmaMax);
        Assert.Equal(Schedule.Sigma(999), OdeLikelihood.SigmaRange(Schedule).SigmaMax);
        Assert.Equal(Schedule.Sigma(0), OdeLikelihood.SigmaRange(Schedule).SigmaMin);
    }

    [Fact]
    public void DequantizedEightBitDataStartTheFlowAtMostAtOneThousandth()
    {
        // σ_1 ≈ 0.01 for the linear schedule at T = 1000, more than the bins' half-width 1/255: dequantised 8-bit data
        // start at 1e-3 by default, continuous data at σ_1.
        Assert.True(Schedule.Sigma(0) > 1e-3);
        Assert.Equal(1e-3, OdeLikelihood.DefaultSigmaMin(Schedule, dequantize: true));
        Assert.Equal(Schedule.Sigma(0), OdeLikelihood.DefaultSigmaMin(Schedule, dequantize: false));
        var tiny = NoiseSchedule.FromBetas(new[] { 1e-8, 0.1, 0.5 });
        Assert.Equal(tiny.Sigma(0), OdeLikelihood.DefaultSigmaMin(tiny, dequantize: true));
        using var scope = NewDisposeScope();
        var images = tensor(new double[] { 0, 17, 128, 255, 3, 90, 200, 64 }).reshape(2, 4) / 127.5 - 1;
        var denoiser = SigmaDenoiser.From(new GaussianDenoiser(Schedule, new double[4], Enumerable.Repeat(0.3, 4).ToArray()), Schedule);
        var result = OdeLikelihood.Compute(denoiser, Schedule, images, new OdeLikelihoodOptions(Steps: 2, Dequantize: true, ExactTrace: true), 0);
        Assert.Contains("from σ = 0.001 ", result.Method);
    }

    [Fact]
    public void RepeatedCallsLeaveNoLiveTensors()
    {
        var data = GaussianData(30);
        var denoiser = new GaussianDenoiser(Schedule, Mean, Variance);
        foreach (var options in new[] { new OdeLikelihoodOptions(Steps: 5, HutchinsonSamples: 2, BatchSize: 16), new OdeLikelihoodOptions(Adaptive: true, Rtol: 1e-3, Atol: 1e-3, BatchSize: 16) })
        {
            OdeLikelihood.Compute(denoiser, Schedule, data, options, seed: 0);
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = 0; i < 3; i++) OdeLikelihood.Compute(denoiser, Schedule, data, options, seed: 0);
            Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        data.Dispose();
    }
}
