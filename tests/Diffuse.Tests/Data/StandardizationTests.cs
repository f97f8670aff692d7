using Diffuse.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Data;

public class StandardizationTests
{
    private static Tensor Table(double[,] values, ScalarType dtype = ScalarType.Float64)
    {
        var flat = new double[values.Length];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(double));
        return torch.tensor(flat, [values.GetLength(0), values.GetLength(1)], ScalarType.Float64).to(dtype);
    }

    private static Tensor RandomTable(int rows, ScalarType dtype)
    {
        var rng = new Random(11);
        var values = new double[rows, 3];
        for (int r = 0; r < rows; r++)
        {
            values[r, 0] = 1000 + 5 * rng.NextDouble();
            values[r, 1] = -3 + 0.01 * rng.NextDouble();
            values[r, 2] = 1e4 * (rng.NextDouble() - 0.5);
        }
        return Table(values, dtype);
    }

    [Fact]
    public void FitUsesTheMeanAndPopulationStd()
    {
        using var data = Table(new double[,] { { 1, 10 }, { 3, 10.5 }, { 5, 12 } });
        var s = Standardization.Fit(data);
        Assert.Equal(3.0, s.Mean[0], 12);
        Assert.Equal(32.5 / 3, s.Mean[1], 12);
        Assert.Equal(Math.Sqrt(8.0 / 3), s.Std[0], 12);
        double m = 32.5 / 3;
        Assert.Equal(Math.Sqrt(((10 - m) * (10 - m) + (10.5 - m) * (10.5 - m) + (12 - m) * (12 - m)) / 3), s.Std[1], 12);
        Assert.Equal(2, s.Dimensions);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void ApplyGivesMeanZeroStdOneInTheSameDtype(ScalarType dtype)
    {
        using var data = RandomTable(2000, dtype);
        var s = Standardization.Fit(data);
        using var z = s.Apply(data);
        Assert.Equal(dtype, z.dtype);
        Assert.Equal(data.shape, z.shape);
        using var z64 = z.to(ScalarType.Float64);
        double tolerance = dtype == ScalarType.Float32 ? 1e-3 : 1e-10;
        foreach (double mean in z64.mean([0]).data<double>().ToArray()) Assert.InRange(mean, -tolerance, tolerance);
        foreach (double std in z64.std(0, unbiased: false).data<double>().ToArray()) Assert.InRange(std, 1 - tolerance, 1 + tolerance);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1e-6)]
    [InlineData(ScalarType.Float64, 1e-13)]
    public void InvertUndoesApply(ScalarType dtype, double relativeTolerance)
    {
        using var data = RandomTable(500, dtype);
        var s = Standardization.Fit(data);
        using var z = s.Apply(data);
        using var back = s.Invert(z);
        Assert.Equal(dtype, back.dtype);
        Assert.True(back.allclose(data, rtol: relativeTolerance, atol: 0), "Invert(Apply(x)) differs from x");
    }

    [Fact]
    public void ApplyAndInvertWorkOnAnyLeadingShape()
    {
        var s = new Standardization([1.0, -2.0], [2.0, 0.5]);
        using var x = torch.tensor(new float[] { 3, -1, 1, -2, 5, -3, 1, 0 }, [2, 2, 2]);
        using var z = s.Apply(x);
        Assert.Equal([1f, 2f, 0f, 0f, 2f, -2f, 0f, 4f], z.data<float>().ToArray());
        using var back = s.Invert(z);
        Assert.Equal(x.data<float>().ToArray(), back.data<float>().ToArray());
    }

    [Fact]
    public void LogScalePerDimensionIsTheMeanLogStd()
    {
        var s = new Standardization([5.0, -1.0], [2.0, 8.0]);
        Assert.Equal(2 * Math.Log(2), s.LogScalePerDimension, 14);
        Assert.Equal(0.0, Standardization.Identity(4).LogScalePerDimension);
    }

    [Fact]
    public void LogScaleMatchesTheChangeOfVariablesOfAGaussian()
    {
        // x ~ N(m, σ²) per column; log p(x) = log p(z) − log σ per dimension, with z = (x − m)/σ standard normal.
        var s = new Standardization([4.0, -7.0, 0.5], [3.0, 0.2, 10.0]);
        double[] x = [5.0, -7.3, 12.0];
        double logPx = 0, logPz = 0;
        for (int d = 0; d < 3; d++)
        {
            double z = (x[d] - s.Mean[d]) / s.Std[d];
            logPz += -0.5 * z * z - 0.5 * Math.Log(2 * Math.PI);
            logPx += -0.5 * z * z - 0.5 * Math.Log(2 * Math.PI) - Math.Log(s.Std[d]);
        }
        Assert.Equal(logPx / 3, logPz / 3 - s.LogScalePerDimension, 12);
    }

    [Fact]
    public void IdentityChangesNothing()
    {
        var s = Standardization.Identity(2);
        using var x = torch.tensor(new double[] { 1.5, -2, 3, 4 }, [2, 2]);
        using var z = s.Apply(x);
        Assert.Equal(x.data<double>().ToArray(), z.data<double>().ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => Standardization.Identity(0));
    }

    [Fact]
    public void ConstantColumnIsNamed()
    {
        using var data = Table(new double[,] { { 1, 2, 7.5 }, { 2, 3, 7.5 }, { 3, 5, 7.5 } });
        var e = Assert.Throws<DiffuseException>(() => Standardization.Fit(data, ["x1", "x2", "x3"]));
        Assert.Equal("Column 3 ('x3') is constant (every value ≈ 7.5): it carries no information to model; remove it.", e.Message);
        var unnamed = Assert.Throws<DiffuseException>(() => Standardization.Fit(data));
        Assert.Equal("Column 3 is constant (every value ≈ 7.5): it carries no information to model; remove it.", unnamed.Message);
    }

    [Fact]
    public void ColumnVaryingOnlyAtRoundingLevelIsConstant()
    {
        using var data = Table(new double[,] { { 0, 1000 }, { 1, 1000.0001 }, { 2, 1000 } }, ScalarType.Float32);
        var e = Assert.Throws<DiffuseException>(() => Standardization.Fit(data, ["a", "b"]));
        Assert.StartsWith("Column 2 ('b') is constant", e.Message);
    }

    [Fact]
    public void NonFiniteColumnIsNamed()
    {
        using var data = Table(new double[,] { { 1, 2 }, { double.NaN, 3 } });
        var e = Assert.Throws<DiffuseException>(() => Standardization.Fit(data, ["a", "b"]));
        Assert.Equal("Column 1 ('a') contains NaN or infinite values: remove or replace them before fitting.", e.Message);
    }

    [Fact]
    public void FitNeedsATwoDimensionalTableWithTwoRows()
    {
        using var vector = torch.zeros(5);
        Assert.Equal("Cannot fit a standardisation to data of shape [5]: it needs a two-dimensional [rows, columns] table.",
            Assert.Throws<DiffuseException>(() => Standardization.Fit(vector)).Message);
        using var single = torch.ones(1, 3);
        Assert.Equal("Cannot fit a standardisation to 1 row: a standard deviation needs at least two rows of data.",
            Assert.Throws<DiffuseException>(() => Standardization.Fit(single)).Message);
    }

    [Fact]
    public void ApplyRejectsDataWithOtherColumns()
    {
        var s = Standardization.Identity(3);
        using var x = torch.zeros(4, 2);
        var e = Assert.Throws<DiffuseException>(() => s.Apply(x));
        Assert.Equal("The data has shape [4, 2] but the standardisation was fitted to 3 columns: give the same columns, in the same order, as the training data.", e.Message);
    }

    [Fact]
    public void InvalidStatisticsAreReported()
    {
        var s = new Standardization([0.0, 1.0], [1.0, 0.0]);
        using var x = torch.zeros(1, 2);
        var e = Assert.Throws<DiffuseException>(() => s.Invert(x));
        Assert.StartsWith("The standardisation is invalid: column 2 has mean 1 and std 0", e.Message);
    }

    [Fact]
    public void EqualityComparesTheStatistics()
    {
        Assert.Equal(new Standardization([1.0, 2.0], [3.0, 4.0]), new Standardization([1.0, 2.0], [3.0, 4.0]));
        Assert.Equal(new Standardization([1.0, 2.0], [3.0, 4.0]).GetHashCode(), new Standardization([1.0, 2.0], [3.0, 4.0]).GetHashCode());
        Assert.NotEqual(new Standardization([1.0, 2.0], [3.0, 4.0]), new Standardization([1.0, 2.0], [3.0, 5.0]));
    }
}
