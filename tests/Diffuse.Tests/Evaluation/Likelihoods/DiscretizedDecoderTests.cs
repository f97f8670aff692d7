using static TorchSharp.torch;
using Diffuse.Evaluation.Likelihoods;

namespace Diffuse.Tests.Evaluation.Likelihoods;

public class DiscretizedDecoderTests
{
    private static readonly double[] Levels = Enumerable.Range(0, 256).Select(k => k / 127.5 - 1).ToArray();

    [Theory]
    [InlineData(0.0, 1e-4)]
    [InlineData(-0.99, 1e-3)]
    [InlineData(0.7, 0.05)]
    [InlineData(3.0, 1e-4)]   // mean far outside the range: only the top bin has mass
    public void TheProbabilitiesOfAll256ValuesSumToOne(double mean, double variance)
    {
        using var scope = NewDisposeScope();
        var x = tensor(Levels).unsqueeze(1);                          // 256 rows of one pixel
        var mu = full(256, 1, mean, dtype: ScalarType.Float64);
        var nll = new DiscretizedGaussianDecoder().NegativeLogLikelihood(x, mu, variance);
        double total = (-nll).exp().sum().item<double>();
        Assert.Equal(1.0, total, 9);
    }

    [Fact]
    public void AnInteriorBinHasTheGaussianMassOfItsInterval()
    {
        using var scope = NewDisposeScope();
        double x = Levels[100], mean = x + 0.003, sigma = 0.01;
        var nll = new DiscretizedGaussianDecoder().NegativeLogLikelihood(tensor(new[,] { { x } }), tensor(new[,] { { mean } }), sigma * sigma).item<double>();
        // Reference: numerical integration of the density over [x − 1/255, x + 1/255].
        double a = x - 1 / 255.0, b = x + 1 / 255.0, sum = 0;
        const int n = 100_000;
        for (int i = 0; i < n; i++)
        {
            double u = a + (i + 0.5) * (b - a) / n;
            sum += Math.Exp(-0.5 * Math.Pow((u - mean) / sigma, 2)) / (sigma * Math.Sqrt(2 * Math.PI)) * (b - a) / n;
        }
        Assert.Equal(-Math.Log(sum), nll, 6);
    }

    [Fact]
    public void PerRowSumsOverDimensions()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new[,] { { Levels[10], Levels[200] }, { Levels[128], Levels[128] } });
        var nll = new DiscretizedGaussianDecoder().NegativeLogLikelihood(x, x, 1e-4);
        Assert.Equal(new long[] { 2 }, nll.shape);
        // Mean exactly at the bin centre with σ = 0.01: mass 2Φ(0.3922) − 1 per pixel.
        double mass = 2 * 0.5 * (1 + Erf(1 / 255.0 / 0.01 / Math.Sqrt(2))) - 1;
        Assert.Equal(-2 * Math.Log(mass), nll[1].item<double>(), 5);
    }

    private static double Erf(double x)
    {
        // Abramowitz–Stegun 7.1.26 is too coarse for 5 digits; integrate the series instead.
        double sum = 0, term = x;
        for (int n = 0; n < 60; n++) { sum += term / (2 * n + 1); term *= -x * x / (n + 1); }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
