using static TorchSharp.torch;
using Diffuse.Evaluation.SampleQuality;

namespace Diffuse.Tests.Evaluation.SampleQuality;

public class FeatureMetricsTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void FrechetDistanceOfTwoGaussiansMatchesTheClosedForm()
    {
        // Diagonal covariances commute: FD = ‖Δμ‖² + Σ(σ1 − σ2)².
        var a = new GaussianStatistics(new[] { 0.0, 1.0, 2.0 }, new double[,] { { 4, 0, 0 }, { 0, 1, 0 }, { 0, 0, 0.25 } });
        var b = new GaussianStatistics(new[] { 1.0, 1.0, 0.0 }, new double[,] { { 1, 0, 0 }, { 0, 9, 0 }, { 0, 0, 0.25 } });
        double expected = 1 + 4 + (2 - 1) * (2 - 1) + (1 - 3) * (1 - 3) + 0;
        Assert.Equal(expected, FeatureMetrics.FrechetDistance(a, b), 9);
        Assert.Equal(0, FeatureMetrics.FrechetDistance(a, a), 9);
    }

    [Fact]
    public void FrechetDistanceIsInvariantToARotationOfBothSets()
    {
        // A non-diagonal case: rotate both Gaussians of the diagonal case by the same orthogonal matrix.
        double c = Math.Cos(0.7), s = Math.Sin(0.7);
        var r = new double[,] { { c, -s }, { s, c } };
        double[,] Rotate(double[,] m)
        {
            var o = new double[2, 2];
            for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) for (int k = 0; k < 2; k++) for (int l = 0; l < 2; l++) o[i, j] += r[i, k] * m[k, l] * r[j, l];
            return o;
        }
        var a = new GaussianStatistics(new[] { 0.0, 0.0 }, Rotate(new double[,] { { 4, 0 }, { 0, 1 } }));
        var b = new GaussianStatistics(new[] { 0.0, 0.0 }, Rotate(new double[,] { { 1, 0 }, { 0, 9 } }));
        Assert.Equal(1 + 4, FeatureMetrics.FrechetDistance(a, b), 9);
    }

    [Fact]
    public void FrechetDistanceOfSamplesApproachesTheDistanceOfTheirGaussians()
    {
        using var scope = NewDisposeScope();
        var x = Diffuse.Randomness.SeededNoise.Normal(1, 0, 0, 20000, new long[] { 4 }).to_type(ScalarType.Float64);
        var y = Diffuse.Randomness.SeededNoise.Normal(2, 0, 0, 20000, new long[] { 4 }).to_type(ScalarType.Float64) * 2 + 1;
        // Exact: ‖Δμ‖² = 4, Σ(σ1 − σ2)² = 4.
        Assert.InRange(FeatureMetrics.FrechetDistance(x, y), 7.8, 8.2);
    }

    [Fact]
    public void KidOfTwoSamplesOfOneDistributionIsZeroWithinItsSpread()
    {
        using var scope = NewDisposeScope();
        var x = Diffuse.Randomness.SeededNoise.Normal(3, 0, 0, 4000, new long[] { 8 });
        var y = Diffuse.Randomness.SeededNoise.Normal(4, 0, 0, 4000, new long[] { 8 });
        var same = FeatureMetrics.KernelInceptionDistance(x, y, subsets: 10, subsetSize: 500);
        Assert.InRange(same.Mean, -3 * same.StdError, 3 * same.StdError);
        var shifted = FeatureMetrics.KernelInceptionDistance(x, y + 0.5, subsets: 10, subsetSize: 500);
        Assert.True(shifted.Mean > 10 * shifted.StdError, $"shifted KID {shifted.Mean} ± {shifted.StdError}");
    }

    [Theory]
    [InlineData(0.0)]   // one distribution: ζ₁ = 0, the error is of order 1/m (measured ratio 1.31: a little wide)
    [InlineData(0.3)]   // shifted: ζ₁ > 0, the error is of order 1/√m (measured ratio 1.05)
    public void TheStandardErrorOfKidMatchesItsSpreadOverIndependentDraws(double shift)
    {
        // 60 independent pairs of sets of 150 rows, each its own single subset (so the subset spread is 0): the
        // estimates scatter by their true standard error, which must be estimated from each pair alone.
        using var scope = NewDisposeScope();
        const int draws = 60, rows = 150;
        var estimates = new double[draws];
        var errors = new double[draws];
        for (int i = 0; i < draws; i++)
        {
            using var inner = NewDisposeScope();
            var x = Diffuse.Randomness.SeededNoise.Normal(100 + (ulong)i, 0, 0, rows, new long[] { 6 });
            var y = Diffuse.Randomness.SeededNoise.Normal(500 + (ulong)i, 0, 0, rows, new long[] { 6 }) + shift;
            var kid = FeatureMetrics.KernelInceptionDistance(x, y, subsets: 1, subsetSize: rows);
            Assert.Equal(0, kid.StdDev);
            (estimates[i], errors[i]) = (kid.Mean, kid.StdError);
        }
        double mean = estimates.Average();
        double spread = Math.Sqrt(estimates.Sum(e => (e - mean) * (e - mean)) / (draws - 1));
        double estimated = Math.Sqrt(errors.Average(e => e * e));
        output.WriteLine($"shift {shift}: estimated {estimated:G3}, spread over draws {spread:G3}, ratio {estimated / spread:F2}");
        // The spread of 60 draws is itself uncertain by about 1/√(2·59) ≈ 9 %.
        Assert.InRange(estimated / spread, 0.75, 1.5);
        if (shift == 0) Assert.InRange(mean, -3 * spread / Math.Sqrt(draws), 3 * spread / Math.Sqrt(draws));
    }

    [Fact]
    public void PrecisionAndRecallSeeMissingModesAndOutliers()
    {
        using var scope = NewDisposeScope();
        var real = Diffuse.Randomness.SeededNoise.Normal(5, 0, 0, 2000, new long[] { 2 });
        var same = Diffuse.Randomness.SeededNoise.Normal(6, 0, 0, 2000, new long[] { 2 });
        var pr = FeatureMetrics.PrecisionAndRecall(real, same);
        Assert.True(pr.Precision > 0.9 && pr.Recall > 0.9, $"{pr}");
        // Generated points only in one half: precision stays high, recall drops to about a half.
        var half = same.index(same.select(1, 0) > 0);
        var prHalf = FeatureMetrics.PrecisionAndRecall(real, half);
        Assert.True(prHalf.Precision > 0.9 && prHalf.Recall < 0.65, $"{prHalf}");
        // Generated far away: precision 0.
        Assert.Equal(0, FeatureMetrics.PrecisionAndRecall(real, same + 100).Precision);
    }

    [Fact]
    public void AccuracyCountsArgmaxMatches()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(new float[,] { { 1, 2 }, { 3, 0 }, { 0, 5 }, { 2, 1 } });
        Assert.Equal(0.75, FeatureMetrics.Accuracy(logits, tensor(new long[] { 1, 0, 1, 1 })), 12);
    }
}
