using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Diffuse.Evaluation.SampleQuality;

namespace Diffuse.Tests.Evaluation.SampleQuality;

public class SampleMetricsTests(ITestOutputHelper output)
{
    // ---- Data helpers (System.Random, so the data is the same on every machine) ----

    private static double Normal(Random r) =>
        Math.Sqrt(-2.0 * Math.Log(1.0 - r.NextDouble())) * Math.Cos(2.0 * Math.PI * r.NextDouble());

    private static Tensor Gaussian(int rows, int columns, int seed, double shift = 0, double scale = 1)
    {
        var r = new Random(seed);
        var v = new double[rows * columns];
        for (int i = 0; i < v.Length; i++) v[i] = shift + scale * Normal(r);
        return tensor(v, new long[] { rows, columns }, ScalarType.Float64);
    }

    /// <summary>Points on a ring of radius 1 with radial noise of standard deviation <paramref name="thickness"/>.</summary>
    private static double[] RingValues(int rows, int seed, double thickness = 0.05)
    {
        var r = new Random(seed);
        var v = new double[rows * 2];
        for (int i = 0; i < rows; i++)
        {
            double angle = 2 * Math.PI * r.NextDouble();
            double radius = 1 + thickness * Normal(r);
            v[2 * i] = radius * Math.Cos(angle);
            v[2 * i + 1] = radius * Math.Sin(angle);
        }
        return v;
    }

    private static Tensor Ring(int rows, int seed, double blur = 0, double thickness = 0.05)
    {
        var v = RingValues(rows, seed, thickness);
        if (blur > 0)
        {
            var r = new Random(seed + 1_000_003);
            for (int i = 0; i < v.Length; i++) v[i] += blur * Normal(r);
        }
        return tensor(v, new long[] { rows, 2 }, ScalarType.Float64);
    }

    /// <summary>The points of <see cref="Ring"/> (no blur) projected onto the centre line: radius exactly 1.</summary>
    private static Tensor CollapsedRing(int rows, int seed, double thickness = 0.05)
    {
        var v = RingValues(rows, seed, thickness);
        for (int i = 0; i < rows; i++)
        {
            double norm = Math.Sqrt(v[2 * i] * v[2 * i] + v[2 * i + 1] * v[2 * i + 1]);
            v[2 * i] /= norm;
            v[2 * i + 1] /= norm;
        }
        return tensor(v, new long[] { rows, 2 }, ScalarType.Float64);
    }

    /// <summary>Φ⁻¹((i − ½)/n), i = 1..n: a deterministic "perfect" N(0, 1) sample.</summary>
    private static Tensor NormalQuantiles(int n, double shift)
    {
        using var scope = NewDisposeScope();
        var p = (arange(1, n + 1, dtype: ScalarType.Float64) - 0.5) / n;
        return (special.erfinv(p * 2 - 1) * Math.Sqrt(2) + shift).unsqueeze(1).MoveToOuterDisposeScope();
    }

    private static double Phi(double x)
    {
        using var t = tensor(-x / Math.Sqrt(2), ScalarType.Float64);
        using var e = special.erfc(t);
        return 0.5 * e.item<double>();
    }

    /// <summary>E|Z| for Z ~ N(m, s²).</summary>
    private static double MeanAbsNormal(double m, double s) =>
        s * Math.Sqrt(2 / Math.PI) * Math.Exp(-m * m / (2 * s * s)) + m * (1 - 2 * Phi(-m / s));

    // ---- KDE ----

    [Fact]
    public void KdeWithOneFitPointIsTheGaussianLogDensity()
    {
        const double h = 0.7;
        using var fit = zeros(1, 1, dtype: ScalarType.Float64);
        var q = new[] { -2.0, -0.3, 0.0, 0.5, 3.0 };
        using var query = tensor(q, new long[] { q.Length, 1 }, ScalarType.Float64);
        var expected = q.Select(x => -0.5 * Math.Log(2 * Math.PI * h * h) - x * x / (2 * h * h)).ToArray();

        var actual = SampleMetrics.KdeLogDensities(fit, query, h);
        for (int i = 0; i < q.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
        Assert.Equal(expected.Average(), SampleMetrics.KdeMeanLogDensity(fit, query, h), 1e-12);
        // Far from the fit point the density underflows in linear space but logsumexp keeps it exact.
        using var far = tensor(new[] { 60.0 }, new long[] { 1, 1 }, ScalarType.Float64);
        Assert.Equal(-0.5 * Math.Log(2 * Math.PI * h * h) - 3600 / (2 * h * h), SampleMetrics.KdeMeanLogDensity(fit, far, h), 1e-9);
    }

    [Fact]
    public void KdeOfALargeGaussianSampleApproachesTheNegativeEntropy()
    {
        const int d = 2;
        const double h = 0.15;
        using var fit = Gaussian(8000, d, seed: 1);
        using var query = Gaussian(4000, d, seed: 2);
        double kde = SampleMetrics.KdeMeanLogDensity(fit, query, h);

        // The expected KDE is N(0, (1 + h²)I); averaged over the same queries it must match closely.
        double v = 1 + h * h;
        using var squaredNorms = query.pow(2).sum(1);
        double smoothed = (-0.5 * d * Math.Log(2 * Math.PI * v)) - squaredNorms.mean().item<double>() / (2 * v);
        Assert.Equal(smoothed, kde, 0.03);
        double negativeEntropy = -0.5 * d * Math.Log(2 * Math.PI * Math.E);
        Assert.Equal(negativeEntropy, kde, 0.08);
    }

    [Fact]
    public void ScottBandwidthIsScottsRule()
    {
        // Columns with standard deviations 1 and 3 (exactly, n − 1 denominator): σ̄ = 2.
        var values = new double[] { -1, -3, 1, 3 }; // rows (−1, −3) and (1, 3)
        using var reference = tensor(values, new long[] { 2, 2 }, ScalarType.Float64);
        double sd1 = Math.Sqrt(2), sd2 = 3 * Math.Sqrt(2); // std of {−1, 1} and {−3, 3}
        Assert.Equal((sd1 + sd2) / 2 * Math.Pow(1000, -1.0 / 6), SampleMetrics.ScottBandwidth(reference, 1000), 1e-12);
    }

    [Fact]
    public void LeaveOneOutLogDensityLeavesOutExactlyThePointItselfAndNeverUnderflows()
    {
        // Four 1-D points, one far out (its kernel values underflow in linear space at the small bandwidths): each
        // point's density is the mean of the kernels of the other three, computed here directly in log space.
        var x = new[] { 0.0, 1.0, 3.0, 200.0 };
        using var points = tensor(x, new long[] { x.Length, 1 }, ScalarType.Float64);
        var tops = new[] { 2.0, 0.7 };
        const int rungs = 3;
        var actual = SampleMetrics.LeaveOneOutMeanLogDensities64(points, tops, rungs);
        for (int t = 0; t < tops.Length; t++)
            for (int r = 0; r < rungs; r++)
            {
                double h = tops[t] * Math.Pow(2, -r / 2.0);
                double LogKernel(double u) => -u * u / (2 * h * h) - 0.5 * Math.Log(2 * Math.PI * h * h);
                double expected = x.Select((xi, i) =>
                {
                    var logs = x.Where((_, j) => j != i).Select(xj => LogKernel(xi - xj)).ToArray();
                    double max = logs.Max();
                    return max + Math.Log(logs.Sum(l => Math.Exp(l - max))) - Math.Log(x.Length - 1);
                }).Average();
                Assert.Equal(expected, actual[t, r], 1e-9 * Math.Abs(expected));
            }
    }

    [Fact]
    public void CrossValidatedBandwidthOfAGaussianIsNearTheAmiseOptimum()
    {
        // For N(0, s²I) the AMISE-optimal Gaussian bandwidth is s·(4/((d+2)N))^(1/(d+4)) (in 2-D equal to Scott's rule).
        const int n = 2000, d = 2;
        const double s = 2.0;
        using var points = Gaussian(n, d, seed: 60, scale: s);
        double h = SampleMetrics.KdeBandwidth(points, n);
        double amise = s * Math.Pow(4.0 / ((d + 2) * n), 1.0 / (d + 4));
        output.WriteLine($"N(0, {s}²I), N = {n}: cross-validated h = {h:G4}, AMISE-optimal {amise:G4} (ratio {h / amise:F2}), " +
            $"Scott {SampleMetrics.ScottBandwidth(points, n):G4}");
        Assert.InRange(h / amise, 0.5, 2.0);
    }

    [Fact]
    public void CrossValidatedBandwidthAdaptsToAThinRing()
    {
        const int n = 2000;
        const double thickness = 0.02;
        using var ring = Ring(n, seed: 61, thickness: thickness);
        double h = SampleMetrics.KdeBandwidth(ring, n);
        double scott = SampleMetrics.ScottBandwidth(ring, n);
        // AMISE for a ring density (1/2π)·φ_t(r − 1), ignoring curvature: h⁶ = 8√π t⁵ / (3N).
        double ringAmise = Math.Pow(8 * Math.Sqrt(Math.PI) * Math.Pow(thickness, 5) / (3 * n), 1.0 / 6);
        output.WriteLine($"ring, thickness {thickness}, N = {n}: cross-validated h = {h:G4}, Scott {scott:G4} " +
            $"(ratio {h / scott:F3}), ring AMISE approximation {ringAmise:G4}");
        Assert.True(h < scott / 4, $"h {h}, Scott {scott}");
        Assert.InRange(h / ringAmise, 0.5, 2.0);
    }

    [Fact]
    public void KdeBandwidthSubsamplesALargerReferenceAndRescalesASmallerOne()
    {
        using var reference = Ring(600, seed: 62);
        using var first = reference.narrow(0, 0, 300);
        // More rows than N: a seeded random subset of N rows, so the result depends on the seed but is reproducible.
        double a = SampleMetrics.KdeBandwidth(reference, 300, seed: 1);
        Assert.Equal(a, SampleMetrics.KdeBandwidth(reference, 300, seed: 1));
        Assert.NotEqual(a, SampleMetrics.KdeBandwidth(reference, 300, seed: 2));
        // Fewer rows than N: all rows, scaled by (R/N)^(1/(d+4)).
        double all = SampleMetrics.KdeBandwidth(first, 300);
        Assert.Equal(all * Math.Pow(0.5, 1.0 / 6), SampleMetrics.KdeBandwidth(first, 600), 1e-12);
        Assert.Throws<DiffuseException>(() => SampleMetrics.KdeBandwidth(reference, 1));
    }

    // ---- Energy distance ----

    [Fact]
    public void EnergyDistanceOfOneDimensionalGaussiansMatchesTheClosedForm()
    {
        const double delta = 1.0;
        using var x = NormalQuantiles(3000, 0);
        using var y = NormalQuantiles(3000, delta);
        // X − Y ~ N(−δ, 2), X − X' ~ N(0, 2).
        double expected = 2 * MeanAbsNormal(delta, Math.Sqrt(2)) - 2 * MeanAbsNormal(0, Math.Sqrt(2));
        double actual = SampleMetrics.EnergyDistance(x, y);
        output.WriteLine($"energy distance N(0,1) vs N({delta},1): {actual:F5}, closed form {expected:F5}");
        Assert.Equal(expected, actual, 0.005);
    }

    [Fact]
    public void EnergyDistanceOfTwoSamplesOfOneDistributionIsNearZero()
    {
        using var a = Gaussian(2000, 2, seed: 3);
        using var b = Gaussian(2000, 2, seed: 4);
        using var shifted = Gaussian(2000, 2, seed: 5, shift: 0.5);
        double same = SampleMetrics.EnergyDistance(a, b);
        double different = SampleMetrics.EnergyDistance(a, shifted);
        output.WriteLine($"same distribution {same:G4}, shifted by 0.5 per axis {different:G4}");
        Assert.True(Math.Abs(same) < 0.05 * different, $"same {same}, shifted {different}");
        // The within-set terms are U-statistics: a set against itself scores slightly below 0, not above.
        Assert.True(SampleMetrics.EnergyDistance(a, a) <= 0);
    }

    // ---- Sliced Wasserstein ----

    [Fact]
    public void SlicedWassersteinOfASetWithItselfIsZero()
    {
        using var a = Gaussian(500, 3, seed: 6);
        Assert.Equal(0.0, SampleMetrics.SlicedWasserstein(a, a), 12);
        // Unequal sizes go through quantile matching: a set and the same set twice are the same distribution.
        using var twice = cat(new[] { a, a }, 0);
        Assert.Equal(0.0, SampleMetrics.SlicedWasserstein(a, twice), 12);
    }

    [Fact]
    public void SlicedWassersteinMatchesQuantileArithmeticInOneDimension()
    {
        // F⁻¹ of {0, 1} vs {0, 1, 2}: differs by 1 on [1/3, 1/2) and on [2/3, 1): W₂² = 1/6 + 1/3.
        using var a = tensor(new[] { 1.0, 0.0 }, new long[] { 2, 1 }, ScalarType.Float64);
        using var b = tensor(new[] { 2.0, 0.0, 1.0 }, new long[] { 3, 1 }, ScalarType.Float64);
        Assert.Equal(Math.Sqrt(0.5), SampleMetrics.SlicedWasserstein(a, b, projections: 3), 12);
        Assert.Equal(Math.Sqrt(0.5), SampleMetrics.SlicedWasserstein(b, a, projections: 3), 12);
    }

    [Fact]
    public void SlicedWassersteinOfAShiftedSetIsTheShiftTimesRootMeanCosine()
    {
        // Along direction u the shifted projection moves by δ·cos θ, so W₂² = δ² cos²θ; E[cos²θ] = 1/2 in 2-D.
        const double delta = 0.8;
        using var a = Gaussian(1000, 2, seed: 7);
        using var shift = tensor(new[] { delta, 0.0 }, ScalarType.Float64);
        using var b = a + shift;
        double sw = SampleMetrics.SlicedWasserstein(a, b, projections: 4000, seed: 3);
        Assert.Equal(delta / Math.Sqrt(2), sw, 0.02 * delta);
        // Fewer directions: still close, and the same seed gives the same value.
        double few = SampleMetrics.SlicedWasserstein(a, b, projections: 128, seed: 11);
        Assert.Equal(delta / Math.Sqrt(2), few, 0.1 * delta);
        Assert.Equal(few, SampleMetrics.SlicedWasserstein(a, b, projections: 128, seed: 11));
    }

    // ---- The report ----

    [Fact]
    public void KdeScoreSeesAFivePercentBlurThatEnergyDistanceCannot()
    {
        const int n = 3000;
        using var train = Ring(5 * n, seed: 10); // 5 disjoint training subsets of N points
        using var heldOut = Ring(n, seed: 11);
        using var fresh = Ring(n, seed: 12);
        double scale;
        using (var std = train.std(0)) scale = std.mean().item<double>();
        using var blurred = Ring(n, seed: 12, blur: 0.05 * scale);

        var clean = SampleMetrics.Evaluate(fresh, train, heldOut, splits: 5, seed: 1);
        var blur = SampleMetrics.Evaluate(blurred, train, heldOut, splits: 5, seed: 1);
        output.WriteLine("fresh real samples as 'generated':");
        output.WriteLine(clean.Format());
        output.WriteLine($"blurred by N(0, ({0.05 * scale:F4})²):");
        output.WriteLine(blur.Format());

        output.WriteLine($"Scott's rule would give h = {SampleMetrics.ScottBandwidth(train, n):G4}");

        // A perfect generator scores about 0; the blurred one clearly below it.
        Assert.True(Math.Abs(clean.KdeScore) < 3 * clean.KdeScoreStdError + 0.01, $"clean score {clean.KdeScore}");
        double gap = clean.KdeScore - blur.KdeScore;
        double gapError = Math.Sqrt(clean.KdeScoreStdError * clean.KdeScoreStdError + blur.KdeScoreStdError * blur.KdeScoreStdError);
        output.WriteLine($"KDE score gap {gap:F4} = {gap / gapError:F1} standard errors");
        Assert.True(gap > 3 * gapError, $"gap {gap}, standard error {gapError}");
        Assert.True(blur.KdeScore < -3 * blur.KdeScoreStdError, $"blurred score {blur.KdeScore} ± {blur.KdeScoreStdError}");
        Assert.Equal(clean.KdeRealLogDensity, blur.KdeRealLogDensity); // the real side does not depend on 'generated'

        // Energy distance and sliced W2 at this size: the blur moves them by a small fraction of the spread of their
        // noise floors (the observation), so they cannot tell the two generators apart. Observed: energy
        // distance −3.13e-4 (clean) vs −2.93e-4 (blurred), floor −4.54e-4 ± 1.31e-4; sliced W2 0.0204 vs 0.0208,
        // floor 0.0174 ± 0.0031. KDE score with the cross-validated h = 0.0277: −0.0105 ± 0.0089 vs −0.0647 ± 0.0093
        // (gap 0.054 = 4.2 combined s.e.); with Scott's h = 0.187 it was −0.0002 ± 0.0015 vs −0.0158 ± 0.0015 (gap
        // 0.016 = 7.4 s.e.): the smaller bandwidth makes the blur cost 3.5× more nats but the score ~6× noisier.
        double energyShift = blur.EnergyDistance.Value - clean.EnergyDistance.Value;
        double slicedShift = blur.SlicedWasserstein.Value - clean.SlicedWasserstein.Value;
        output.WriteLine($"energy distance shift from the blur {energyShift:G3}, floor sd {clean.EnergyDistance.NoiseFloorStdDev:G3}; " +
            $"sliced W2 shift {slicedShift:G3}, floor sd {clean.SlicedWasserstein.NoiseFloorStdDev:G3}");
        Assert.True(Math.Abs(energyShift) < clean.EnergyDistance.NoiseFloorStdDev);
        Assert.True(Math.Abs(slicedShift) < clean.SlicedWasserstein.NoiseFloorStdDev);
    }

    [Fact]
    public void KdeScorePenalisesSamplesSharperThanTheData()
    {
        // Samples collapsed onto the ring's centre line (radius exactly 1, the radial noise removed) must score worse
        // than fresh real samples: with a bandwidth that resolves the ring's thickness, too sharp is penalised.
        const int n = 2000;
        using var train = Ring(5 * n, seed: 13);
        using var heldOut = Ring(n, seed: 14);
        using var fresh = Ring(n, seed: 15);
        using var collapsed = CollapsedRing(n, seed: 15);

        var clean = SampleMetrics.Evaluate(fresh, train, heldOut, splits: 5, seed: 2);
        var sharp = SampleMetrics.Evaluate(collapsed, train, heldOut, splits: 5, seed: 2);
        output.WriteLine("fresh real samples as 'generated':");
        output.WriteLine(clean.Format());
        output.WriteLine("the same samples projected onto radius 1:");
        output.WriteLine(sharp.Format());
        double gap = clean.KdeScore - sharp.KdeScore;
        double gapError = Math.Sqrt(clean.KdeScoreStdError * clean.KdeScoreStdError + sharp.KdeScoreStdError * sharp.KdeScoreStdError);
        output.WriteLine($"KDE score gap {gap:F4} = {gap / gapError:F1} standard errors");

        // For contrast, Scott's rule (the former default) over-smooths so much that the collapse scores better than
        // real data: the failure this bandwidth rule fixes (the same score, by hand: real side = 5 disjoint blocks).
        double scott = SampleMetrics.ScottBandwidth(train, n);
        double realSide = Enumerable.Range(0, 5).Average(s =>
        {
            using var block = train.narrow(0, s * n, n);
            return SampleMetrics.KdeMeanLogDensity(block, heldOut, scott);
        });
        double scottScore = SampleMetrics.KdeMeanLogDensity(collapsed, heldOut, scott) - realSide;
        output.WriteLine($"with Scott's h = {scott:G4}: collapsed {scottScore:F4}");
        Assert.True(scottScore > 0, $"Scott: collapsed score {scottScore}");

        Assert.True(gap > 3 * gapError, $"gap {gap}, standard error {gapError}");
        Assert.True(sharp.KdeScore < -3 * sharp.KdeScoreStdError, $"collapsed score {sharp.KdeScore} ± {sharp.KdeScoreStdError}");
    }

    [Fact]
    public void SameSeedGivesTheSameReportAndInputsAreLeftIntact()
    {
        using var train = Ring(1200, seed: 20);
        using var heldOut = Ring(500, seed: 21);
        using var generated64 = Ring(400, seed: 22);
        using var generated32 = generated64.to_type(ScalarType.Float32);

        var first = SampleMetrics.Evaluate(generated32, train, heldOut, splits: 3, seed: 5);
        var second = SampleMetrics.Evaluate(generated32, train, heldOut, splits: 3, seed: 5);
        Assert.Equal(first, second);
        Assert.Equal(400, first.Count);
        Assert.True(double.IsFinite(first.EnergyDistance.NoiseFloorStdDev));
        var other = SampleMetrics.Evaluate(generated32, train, heldOut, splits: 3, seed: 6);
        Assert.NotEqual(first.SlicedWasserstein.NoiseFloor, other.SlicedWasserstein.NoiseFloor);

        // The caller's tensors are still alive and unchanged in type.
        Assert.Equal(ScalarType.Float32, generated32.dtype);
        using (var sum = generated32.sum()) Assert.True(float.IsFinite(sum.item<float>()));
        Assert.Equal(1200, train.shape[0]);
        Assert.Contains("KDE score", first.Format());
    }

    [Fact]
    public void MoreGeneratedThanTrainingRowsUsesTheTrainingSizeAndNoSplitSpread()
    {
        using var train = Ring(300, seed: 30);
        using var heldOut = Ring(300, seed: 31);
        using var generated = Ring(500, seed: 32);
        var report = SampleMetrics.Evaluate(generated, train, heldOut, splits: 4, seed: 0);
        Assert.Equal(300, report.Count);
        Assert.True(double.IsNaN(report.EnergyDistance.NoiseFloorStdDev)); // every split is the whole training set
        Assert.Equal(SampleMetrics.KdeBandwidth(train, 300), report.Bandwidth); // tuned on the (only) training subset
        Assert.Contains("n/a", report.Format());
    }

    [Fact]
    public void RepeatedEvaluationsLeakNoTensors()
    {
        using var train = Ring(800, seed: 40);
        using var heldOut = Ring(400, seed: 41);
        using var generated = Ring(400, seed: 42);
        SampleMetrics.Evaluate(generated, train, heldOut, splits: 2, seed: 0); // warm-up
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++)
        {
            SampleMetrics.Evaluate(generated, train, heldOut, splits: 2, seed: i);
            SampleMetrics.KdeMeanLogDensity(generated, heldOut, 0.1);
            SampleMetrics.KdeLogDensities(generated, heldOut, 0.1);
            SampleMetrics.KdeBandwidth(train, 400);
            SampleMetrics.EnergyDistance(generated, heldOut);
            SampleMetrics.SlicedWasserstein(generated, train);
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void InvalidInputsAreUserErrors()
    {
        using var twoColumns = Ring(10, seed: 50);
        using var threeColumns = Gaussian(10, 3, seed: 51);
        using var flat = zeros(10, dtype: ScalarType.Float64);
        using var nan = full(10, 2, double.NaN, dtype: ScalarType.Float64);
        Assert.Throws<DiffuseException>(() => SampleMetrics.EnergyDistance(twoColumns, threeColumns));
        Assert.Throws<DiffuseException>(() => SampleMetrics.SlicedWasserstein(flat, flat));
        Assert.Throws<DiffuseException>(() => SampleMetrics.KdeMeanLogDensity(twoColumns, twoColumns, 0));
        Assert.Throws<DiffuseException>(() => SampleMetrics.Evaluate(nan, twoColumns, twoColumns));
        Assert.Throws<DiffuseException>(() => SampleMetrics.Evaluate(twoColumns, twoColumns, twoColumns, splits: 0));
    }
}
