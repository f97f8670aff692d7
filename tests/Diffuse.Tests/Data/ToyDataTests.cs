using Diffuse.Data;
using static TorchSharp.torch;

namespace Diffuse.Tests.Data;

public class ToyDataTests
{
    private const int Count = 4000;

    public static TheoryData<ToyDistribution> Kinds => new(Enum.GetValues<ToyDistribution>());

    [Fact]
    public void NamesAreCanonicalAndInEnumOrder()
    {
        Assert.Equal(["swissroll", "moons", "8gaussians", "checkerboard", "rings", "pinwheel"], ToyData.Names);
        foreach (var kind in Enum.GetValues<ToyDistribution>())
        {
            Assert.Equal(ToyData.Names[(int)kind], ToyData.NameOf(kind));
            Assert.True(ToyData.TryParse(ToyData.NameOf(kind), out var parsed));
            Assert.Equal(kind, parsed);
            Assert.True(ToyData.TryParse(kind.ToString(), out parsed));
            Assert.Equal(kind, parsed);
        }
    }

    [Theory]
    [InlineData("swiss-roll", ToyDistribution.SwissRoll)]
    [InlineData("Swiss_Roll", ToyDistribution.SwissRoll)]
    [InlineData("two-moons", ToyDistribution.Moons)]
    [InlineData("MOONS", ToyDistribution.Moons)]
    [InlineData("eight-gaussians", ToyDistribution.EightGaussians)]
    [InlineData("8Gaussians", ToyDistribution.EightGaussians)]
    [InlineData(" checkerboard ", ToyDistribution.Checkerboard)]
    [InlineData("concentric-rings", ToyDistribution.Rings)]
    [InlineData("circles", ToyDistribution.Rings)]
    [InlineData("PinWheel", ToyDistribution.Pinwheel)]
    public void TryParseAcceptsAliasesIgnoringCaseAndHyphens(string name, ToyDistribution expected)
    {
        Assert.True(ToyData.TryParse(name, out var kind));
        Assert.Equal(expected, kind);
    }

    [Theory]
    [InlineData("")]
    [InlineData("spiral")]
    [InlineData("9gaussians")]
    [InlineData(null)]
    public void TryParseRejectsUnknownNames(string? name) => Assert.False(ToyData.TryParse(name, out _));

    [Fact]
    public void ParseOfUnknownNameListsTheKnownNames()
    {
        var e = Assert.Throws<DiffuseException>(() => ToyData.Parse("spiral"));
        Assert.Equal("Unknown toy distribution 'spiral': choose one of swissroll, moons, 8gaussians, checkerboard, rings, pinwheel.", e.Message);
    }

    [Fact]
    public void NegativeCountThrows()
    {
        var e = Assert.Throws<DiffuseException>(() => ToyData.SampleArray(ToyDistribution.Moons, -1, 0));
        Assert.Contains("-1", e.Message);
        Assert.Contains("zero or more", e.Message);
    }

    [Fact]
    public void ZeroCountGivesAnEmptyTable()
    {
        Assert.Equal(new float[0, 2], ToyData.SampleArray(ToyDistribution.Rings, 0, 1));
        using var t = ToyData.Sample(ToyDistribution.Rings, 0, 1);
        Assert.Equal([0L, 2L], t.shape);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SampleIsFloat32CountByTwoAndMatchesTheArray(ToyDistribution kind)
    {
        float[,] array = ToyData.SampleArray(kind, 100, 7);
        using var tensor = ToyData.Sample(kind, 100, 7);
        Assert.Equal([100L, 2L], tensor.shape);
        Assert.Equal(ScalarType.Float32, tensor.dtype);
        float[] flat = tensor.data<float>().ToArray();
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(array[i, 0], flat[2 * i]);
            Assert.Equal(array[i, 1], flat[2 * i + 1]);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SameSeedGivesBitIdenticalPointsAndDifferentSeedsDiffer(ToyDistribution kind)
    {
        float[,] a = ToyData.SampleArray(kind, 500, 42);
        float[,] b = ToyData.SampleArray(kind, 500, 42);
        float[,] c = ToyData.SampleArray(kind, 500, 43);
        Assert.Equal(Bits(a), Bits(b));
        int same = 0;
        for (int i = 0; i < 500; i++) if (a[i, 0] == c[i, 0] && a[i, 1] == c[i, 1]) same++;
        Assert.True(same < 5, $"{same} of 500 points equal under another seed");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void SmallerSampleIsAPrefixOfALargerOne(ToyDistribution kind)
    {
        float[,] small = ToyData.SampleArray(kind, 37, 5);
        float[,] large = ToyData.SampleArray(kind, 300, 5);
        for (int i = 0; i < 37; i++)
        {
            Assert.Equal(small[i, 0], large[i, 0]);
            Assert.Equal(small[i, 1], large[i, 1]);
        }
    }

    [Fact]
    public void GeneratorSequenceIsPinned()
    {
        // Checkerboard uses only uniform draws (no transcendental functions), so its points pin the generator exactly.
        float[,] p = ToyData.SampleArray(ToyDistribution.Checkerboard, 2, 0);
        Assert.Equal(new[] { 2.05286765f, -0.0582360439f, -3.65226436f, -2.4569068f }, new[] { p[0, 0], p[0, 1], p[1, 0], p[1, 1] });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void PointsAreFiniteWithUnitOrderScale(ToyDistribution kind)
    {
        float[,] p = ToyData.SampleArray(kind, Count, 1);
        for (int d = 0; d < 2; d++)
        {
            double mean = 0, sq = 0;
            for (int i = 0; i < Count; i++)
            {
                Assert.True(float.IsFinite(p[i, d]));
                Assert.InRange(Math.Abs(p[i, d]), 0, 6);
                mean += p[i, d];
            }
            mean /= Count;
            for (int i = 0; i < Count; i++) sq += (p[i, d] - mean) * (p[i, d] - mean);
            double std = Math.Sqrt(sq / Count);
            Assert.InRange(Math.Abs(mean), 0, 1);
            Assert.InRange(std, 0.7, 2.6);
        }
    }

    [Fact]
    public void SwissRollPointsLieOnTheSpiral()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.SwissRoll, Count, 2);
        int near = 0;
        for (int i = 0; i < Count; i++)
        {
            double x = 5 * p[i, 0], y = 5 * p[i, 1];
            double r = Math.Sqrt(x * x + y * y), theta = Math.Atan2(y, x);
            // The spiral has radius τ at angle τ for τ in [1.5π, 4.5π]; try each winding.
            double best = double.MaxValue;
            for (int k = -1; k <= 3; k++)
            {
                double tau = theta + 2 * Math.PI * k;
                if (tau >= 1.5 * Math.PI - 1 && tau <= 4.5 * Math.PI + 1) best = Math.Min(best, Math.Abs(r - tau));
            }
            if (best < 2.5) near++;
        }
        Assert.True(near > 0.95 * Count, $"{near} of {Count} near the spiral");
    }

    [Fact]
    public void MoonsPointsLieNearTheTwoHalfCircles()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.Moons, Count, 3);
        int near = 0, upper = 0;
        for (int i = 0; i < Count; i++)
        {
            double u = (p[i, 0] + 1) / 2, v = (p[i, 1] + 0.2) / 2;
            double toUpper = Math.Abs(Math.Sqrt(u * u + v * v) - 1);
            double toLower = Math.Abs(Math.Sqrt((u - 1) * (u - 1) + (v - 0.5) * (v - 0.5)) - 1);
            if (Math.Min(toUpper, toLower) < 0.3) near++;
            if (toUpper < toLower) upper++;
        }
        Assert.True(near > 0.99 * Count, $"{near} of {Count} near a half circle");
        Assert.InRange(upper, 0.4 * Count, 0.6 * Count);
    }

    [Fact]
    public void EightGaussiansFormEightEqualClustersOnTheCircle()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.EightGaussians, Count, 4);
        double radius = 2 * Math.Sqrt(2), std = 0.5 / Math.Sqrt(2);
        var counts = new int[8];
        var sums = new double[8, 2];
        for (int i = 0; i < Count; i++)
        {
            int k = (int)Math.Round(Math.Atan2(p[i, 1], p[i, 0]) / (Math.PI / 4) + 8) % 8;
            double cx = radius * Math.Cos(k * Math.PI / 4), cy = radius * Math.Sin(k * Math.PI / 4);
            double distance = Math.Sqrt((p[i, 0] - cx) * (p[i, 0] - cx) + (p[i, 1] - cy) * (p[i, 1] - cy));
            Assert.True(distance < 5 * std, $"point {i} is {distance} from its centre");
            counts[k]++;
            sums[k, 0] += p[i, 0] - cx;
            sums[k, 1] += p[i, 1] - cy;
        }
        for (int k = 0; k < 8; k++)
        {
            Assert.InRange(counts[k], Count / 8 * 0.8, Count / 8 * 1.2);
            Assert.InRange(sums[k, 0] / counts[k], -0.06, 0.06);
            Assert.InRange(sums[k, 1] / counts[k], -0.06, 0.06);
        }
    }

    [Fact]
    public void CheckerboardFillsOnlyTheEvenSquaresAndAllOfThem()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.Checkerboard, Count, 5);
        var counts = new int[4, 4];
        for (int i = 0; i < Count; i++)
        {
            Assert.InRange(p[i, 0], -4f, 4f);
            Assert.InRange(p[i, 1], -4f, 4f);
            int column = Math.Min(3, (int)Math.Floor((p[i, 0] + 4) / 2));
            int row = Math.Min(3, (int)Math.Floor((p[i, 1] + 4) / 2));
            Assert.True((column + row) % 2 == 0, $"point ({p[i, 0]}, {p[i, 1]}) lies in an empty square");
            counts[column, row]++;
        }
        for (int column = 0; column < 4; column++)
            for (int row = column % 2; row < 4; row += 2)
                Assert.InRange(counts[column, row], Count / 8 * 0.8, Count / 8 * 1.2);
    }

    [Fact]
    public void RingsRadiiClusterAtTheFourRingRadii()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.Rings, Count, 6);
        double[] radii = [0.75, 1.5, 2.25, 3.0];
        var counts = new int[4];
        int inGaps = 0;
        for (int i = 0; i < Count; i++)
        {
            double r = Math.Sqrt(p[i, 0] * p[i, 0] + p[i, 1] * p[i, 1]);
            int nearest = 0;
            for (int k = 1; k < 4; k++) if (Math.Abs(r - radii[k]) < Math.Abs(r - radii[nearest])) nearest = k;
            if (Math.Abs(r - radii[nearest]) < 0.25) counts[nearest]++;
            if (Math.Abs(r - radii[nearest]) > 0.3) inGaps++;
        }
        Assert.True(counts.Sum() > 0.99 * Count, $"{counts.Sum()} of {Count} within 0.25 of a ring");
        Assert.True(inGaps <= Count / 1000, $"{inGaps} points in the gaps between rings");
        foreach (int c in counts) Assert.InRange(c, Count / 4 * 0.85, Count / 4 * 1.15);
    }

    [Fact]
    public void PinwheelHasFiveSpiralArms()
    {
        float[,] p = ToyData.SampleArray(ToyDistribution.Pinwheel, Count, 7);
        var counts = new int[5];
        int onArm = 0;
        for (int i = 0; i < Count; i++)
        {
            double r = Math.Sqrt(p[i, 0] * p[i, 0] + p[i, 1] * p[i, 1]) / 2;
            // Undo the spiral twist; what remains is the arm's base angle 2πk/5 plus a small tangential offset.
            double unwound = Math.Atan2(p[i, 1], p[i, 0]) - 0.25 * Math.Exp(r);
            double arms = unwound / (2 * Math.PI / 5);
            int k = (int)(((long)Math.Round(arms) % 5 + 5) % 5);
            if (Math.Abs(arms - Math.Round(arms)) * (2 * Math.PI / 5) < 0.35) { onArm++; counts[k]++; }
        }
        Assert.True(onArm > 0.95 * Count, $"{onArm} of {Count} on an arm");
        foreach (int c in counts) Assert.InRange(c, Count / 5 * 0.8, Count / 5 * 1.2);
    }

    private static int[] Bits(float[,] a)
    {
        var bits = new int[a.Length];
        int i = 0;
        foreach (float v in a) bits[i++] = BitConverter.SingleToInt32Bits(v);
        return bits;
    }
}
