using Diffuse.Imaging.Drawing;

namespace Diffuse.Tests.Imaging;

public class TicksTests
{
    [Theory]
    [InlineData(0.7, 1)]
    [InlineData(1, 1)]
    [InlineData(1.3, 2)]
    [InlineData(3, 5)]
    [InlineData(7, 10)]
    [InlineData(0.0021, 0.005)]
    [InlineData(420, 500)]
    public void NiceStepsAreOneTwoFive(double raw, double expected) => Assert.Equal(expected, Ticks.NiceStep(raw), 12);

    [Fact]
    public void MultiplesCoverTheRangeWithoutNegativeZero()
    {
        double[] values = Ticks.Multiples(-1, 1, 0.5);
        Assert.Equal([-1, -0.5, 0, 0.5, 1], values);
        Assert.Equal(["-1.0", "-0.5", "0", "0.5", "1.0"], Ticks.Format(values, 0.5));
        Assert.Equal(["0", "0.1", "0.2", "0.3"], Ticks.Format(Ticks.Multiples(0, 0.3, 0.1), 0.1));
    }

    [Fact]
    public void LabelsAreCompact()
    {
        Assert.Equal(["0", "5k", "10k", "15k"], Ticks.Format([0, 5000, 10000, 15000], 5000));
        Assert.Equal(["0", "2.5M", "5.0M"], Ticks.Format([0, 2.5e6, 5e6], 2.5e6));
        Assert.Equal(["0", "2e-4", "4e-4"], Ticks.Format([0, 2e-4, 4e-4], 2e-4));
        Assert.Equal(["0", "200", "400"], Ticks.Format([0, 200, 400], 200));
        Assert.Equal("0.001", Ticks.LogLabel(1, -3));
        Assert.Equal("1e-4", Ticks.LogLabel(1, -4));
        Assert.Equal("0.05", Ticks.LogLabel(5, -2));
        Assert.Equal("10000", Ticks.LogLabel(1, 4));
        Assert.Equal("1e5", Ticks.LogLabel(1, 5));
    }

    [Fact]
    public void FitAvoidsCollidingLabels()
    {
        var (values, labels) = Ticks.Fit(-2.5, 2.5, 100, l => l.Length * 12, 10, 9);
        Assert.True(values.Length >= 2);
        double spacing = (values[1] - values[0]) / 5.0 * 100;
        Assert.True(labels.Max(l => l.Length * 12) + 10 <= spacing);
    }
}
