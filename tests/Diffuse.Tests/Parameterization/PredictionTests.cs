using Diffuse.Parameterization;
using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Tests.Parameterization;

public class PredictionTests
{
    [Theory]
    [InlineData(Prediction.Epsilon, 0.999)]
    [InlineData(Prediction.Epsilon, 0.3)]
    [InlineData(Prediction.X0, 0.5)]
    [InlineData(Prediction.X0, 0.01)]
    [InlineData(Prediction.V, 0.9)]
    [InlineData(Prediction.V, 0.001)]
    public void ConversionsRoundTrip(Prediction prediction, double alphaBar)
    {
        using var scope = NewDisposeScope();
        var x0 = SeededNoise.Normal(1, 0, 0, 64, new long[] { 3 }).to_type(ScalarType.Float64);
        var eps = SeededNoise.Normal(1, 1, 0, 64, new long[] { 3 }).to_type(ScalarType.Float64);
        var ab = tensor(alphaBar, dtype: ScalarType.Float64);
        var z = Diffuse.Schedules.GaussianProcess.Noise(x0, ab, eps);
        var target = PredictionConversion.Target(prediction, x0, eps, ab);
        var (x0Back, epsBack) = PredictionConversion.ToX0AndEps(prediction, target, z, ab);
        Assert.True(x0Back.allclose(x0, rtol: 1e-9, atol: 1e-9));
        Assert.True(epsBack.allclose(eps, rtol: 1e-9, atol: 1e-9));
        foreach (var other in Enum.GetValues<Prediction>())
        {
            var asOther = PredictionConversion.Target(other, x0Back, epsBack, ab);
            var (x0Again, _) = PredictionConversion.ToX0AndEps(other, asOther, z, ab);
            Assert.True(x0Again.allclose(x0, rtol: 1e-8, atol: 1e-8));
        }
    }

    [Fact]
    public void MinSnrWeightGivesAnX0WeightOfMinSnrGamma()
    {
        using var scope = NewDisposeScope();
        var snr = tensor(new[] { 0.1, 1.0, 5.0, 100.0 });
        double gamma = 5;
        // An ε error e maps to an x0 error e/√SNR, a v error to x0 error e/√(SNR+1): the x0-space weight must be min(SNR, γ).
        var eps = PredictionConversion.MinSnrWeight(Prediction.Epsilon, snr, gamma) * snr;
        var x0 = PredictionConversion.MinSnrWeight(Prediction.X0, snr, gamma);
        var v = PredictionConversion.MinSnrWeight(Prediction.V, snr, gamma) * (snr + 1);
        var expected = snr.clamp(max: gamma);
        Assert.True(eps.allclose(expected));
        Assert.True(x0.allclose(expected));
        Assert.True(v.allclose(expected));
    }
}
