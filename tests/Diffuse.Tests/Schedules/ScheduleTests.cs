using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Schedules;

public class ScheduleTests
{
    [Fact]
    public void LinearScheduleMatchesDdpmAtThousandStepsAndScalesWithT()
    {
        var s = NoiseSchedule.Linear(1000);
        Assert.Equal(1e-4, s.Betas[0], 12);
        Assert.Equal(0.02, s.Betas[999], 12);
        var s100 = NoiseSchedule.Linear(100);
        Assert.Equal(1e-3, s100.Betas[0], 12);
        Assert.Equal(0.2, s100.Betas[99], 12);
        // The same continuous process: the final ᾱ is close for any T.
        Assert.InRange(Math.Log(s.AlphaBar(999)) / Math.Log(s100.AlphaBar(99)), 0.9, 1.1);
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    [InlineData(ScheduleKind.Sigmoid)]
    public void AlphaBarDecreasesFromNearOneToNearZero(ScheduleKind kind)
    {
        var s = NoiseSchedule.Create(new ScheduleConfig(kind, 1000));
        Assert.True(s.AlphaBar(0) > 0.99);
        Assert.True(s.AlphaBar(999) < 1e-3);
        for (int n = 1; n < 1000; n++) Assert.True(s.AlphaBar(n) < s.AlphaBar(n - 1));
        for (int n = 0; n < 1000; n++) Assert.Equal(s.AlphaBar(n) / (1 - s.AlphaBar(n)), s.Snr(n), 9);
        Assert.Equal(1.0, s.AlphaBar(-1));
    }

    [Fact]
    public void CosineFollowsItsClosedForm()
    {
        var s = NoiseSchedule.Cosine(1000);
        double F(double t) => Math.Pow(Math.Cos((t / 1000 + 0.008) / 1.008 * Math.PI / 2), 2);
        Assert.Equal(F(500) / F(0), s.AlphaBar(499), 9);
    }

    [Fact]
    public void CustomBetasAreValidated()
    {
        Assert.Throws<DiffuseException>(() => NoiseSchedule.FromBetas(new[] { 0.1, 1.5 }));
        Assert.Throws<DiffuseException>(() => new ScheduleConfig(ScheduleKind.Custom, 3, new[] { 0.1, 0.2 }).Validate());
        var s = NoiseSchedule.FromBetas(new[] { 0.1, 0.2 });
        Assert.Equal(0.9 * 0.8, s.AlphaBar(1), 12);
    }

    [Theory]
    [InlineData(ScheduleKind.Linear)]
    [InlineData(ScheduleKind.Cosine)]
    [InlineData(ScheduleKind.Sigmoid)]
    public void ZeroTerminalSnrShiftsAndScalesTheSquareRootOfAlphaBar(ScheduleKind kind)
    {
        // Lin et al. 2023, Algorithm 1: √ᾱ' is an affine function of √ᾱ with √ᾱ'_1 = √ᾱ_1 and √ᾱ'_T = 0.
        var original = NoiseSchedule.Create(new ScheduleConfig(kind, 1000));
        var rescaled = NoiseSchedule.Create(new ScheduleConfig(kind, 1000, ZeroTerminalSnr: true));
        double first = Math.Sqrt(original.AlphaBar(0)), last = Math.Sqrt(original.AlphaBar(999));
        Assert.Equal(0.0, rescaled.AlphaBar(999));
        Assert.Equal(original.AlphaBar(0), rescaled.AlphaBar(0), 14);
        for (int n = 0; n < 1000; n++)
        {
            double expected = (Math.Sqrt(original.AlphaBar(n)) - last) * first / (first - last);
            Assert.Equal(expected, Math.Sqrt(rescaled.AlphaBar(n)), 12);
            if (n > 0) Assert.True(rescaled.AlphaBar(n) < rescaled.AlphaBar(n - 1));
        }
        Assert.Equal(0.0, rescaled.Snr(999));
        Assert.Equal(kind, rescaled.Kind);
    }

    [Fact]
    public void ForwardMarginalsMatchTheClosedForm()
    {
        // x ~ N(m, s²) per dimension; z_t = √ᾱ x + √(1−ᾱ) ε has mean √ᾱ m and variance ᾱ s² + 1 − ᾱ.
        var schedule = NoiseSchedule.Cosine(1000);
        const int count = 200_000;
        double m = 1.5, sd = 0.5;
        using var scope = NewDisposeScope();
        var x = SeededNoise.Normal(1, 0, 0, count, new long[] { 1 }).to_type(ScalarType.Float64) * sd + m;
        foreach (int n in new[] { 0, 100, 500, 900, 999 })
        {
            double ab = schedule.AlphaBar(n);
            var eps = SeededNoise.Normal(2, (ulong)n, 0, count, new long[] { 1 }).to_type(ScalarType.Float64);
            var z = GaussianProcess.Noise(x, tensor(ab, dtype: ScalarType.Float64), eps);
            double expectedVar = ab * sd * sd + 1 - ab;
            double mean = z.mean().item<double>(), variance = z.var().item<double>();
            Assert.InRange(mean - Math.Sqrt(ab) * m, -4 * Math.Sqrt(expectedVar / count), 4 * Math.Sqrt(expectedVar / count));
            Assert.InRange(variance / expectedVar, 1 - 4 * Math.Sqrt(2.0 / count), 1 + 4 * Math.Sqrt(2.0 / count));
        }
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(10, 9)]
    [InlineData(500, 499)]
    [InlineData(500, 300)]   // a respaced jump
    [InlineData(999, 0)]
    public void PosteriorEqualsBayesRuleComputedNumerically(int t, int s)
    {
        // Bayes: q(z_s | z_t, x) ∝ q(z_t | z_s)·q(z_s | x), both Gaussian; integrate on a grid.
        var schedule = NoiseSchedule.Linear(1000);
        double abT = schedule.AlphaBar(t), abS = schedule.AlphaBar(s), alphaStep = abT / abS;
        double x = 0.7, zt = -0.4;
        double priorMean = Math.Sqrt(abS) * x, priorVar = 1 - abS;
        var post = GaussianProcess.Posterior(abT, abS);
        double centre = post.X0Coef * x + post.ZCoef * zt, width = Math.Sqrt(post.Variance);
        double sumW = 0, sumWz = 0, sumWz2 = 0;
        const int grid = 200_001;
        for (int i = 0; i < grid; i++)
        {
            double zs = centre + width * 12 * (i / (double)(grid - 1) - 0.5);
            double logW = -0.5 * Math.Pow(zs - priorMean, 2) / priorVar - 0.5 * Math.Pow(zt - Math.Sqrt(alphaStep) * zs, 2) / (1 - alphaStep);
            double w = Math.Exp(logW + 0.5 * Math.Pow(centre - priorMean, 2) / priorVar + 0.5 * Math.Pow(zt - Math.Sqrt(alphaStep) * centre, 2) / (1 - alphaStep));
            sumW += w; sumWz += w * zs; sumWz2 += w * zs * zs;
        }
        double mean = sumWz / sumW, variance = sumWz2 / sumW - mean * mean;
        Assert.Equal(mean, centre, 6);
        Assert.Equal(1.0, variance / post.Variance, 4);
    }

    [Fact]
    public void GaussianKlMatchesTheClosedFormAndIsZeroForEqualGaussians()
    {
        using var scope = NewDisposeScope();
        var m1 = tensor(new double[,] { { 0.0, 1.0 } });
        var m2 = tensor(new double[,] { { 0.5, 1.0 } });
        Assert.Equal(0.0, GaussianProcess.GaussianKl(m1, 0.3, m1, 0.3).item<double>(), 12);
        double expected = 2 * 0.5 * (Math.Log(2.0 / 0.5) + 0.5 / 2.0 - 1) + 0.5 * 0.25 / 2.0;
        Assert.Equal(expected, GaussianProcess.GaussianKl(m1, 0.5, m2, 2.0).item<double>(), 12);
    }
}
