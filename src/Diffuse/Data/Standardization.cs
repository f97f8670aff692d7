using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Data;

/// <summary>
/// Per-column standardisation of tabular data, z = (x − mean) / std, so that the model sees each column with mean 0
/// and standard deviation 1. The statistics are plain numbers so that they can be stored with a checkpoint and applied
/// again to new data or inverted on samples.
/// </summary>
/// <param name="Mean">The mean of each column, in original units.</param>
/// <param name="Std">The standard deviation of each column, in original units; every entry must be positive.</param>
/// <remarks>
/// Two instances are equal when their means and standard deviations are equal element by element.
/// </remarks>
public sealed record Standardization(double[] Mean, double[] Std)
{
    /// <summary>
    /// A column whose standard deviation is at most this fraction of its largest magnitude is treated as constant: its
    /// variation is at the level of float32 rounding and dividing by it would only amplify noise.
    /// </summary>
    public const double ConstantColumnTolerance = 1e-6;

    /// <summary>The number of columns.</summary>
    public int Dimensions => Mean.Length;

    /// <summary>
    /// The mean over columns of log(std), in nats per dimension. A log-likelihood per dimension computed on standardised
    /// data becomes one in original units by subtracting this value; a negative log-likelihood (or bits-per-dimension
    /// after dividing by ln 2) by adding it. This is the log-determinant of the map z → x, divided by the dimension.
    /// </summary>
    /// <exception cref="DiffuseException">The statistics are invalid (see <see cref="Apply"/>).</exception>
    public double LogScalePerDimension
    {
        get
        {
            Validate();
            double sum = 0;
            foreach (double s in Std) sum += Math.Log(s);
            return sum / Std.Length;
        }
    }

    /// <summary>
    /// Fits per-column statistics to <paramref name="data"/> of shape <c>[rows, columns]</c>: the sample mean and the
    /// population standard deviation (dividing by the number of rows, not rows − 1), both computed in float64.
    /// </summary>
    /// <param name="data">The training data; not modified.</param>
    /// <param name="columnNames">Optional names for the columns, used in error messages.</param>
    /// <exception cref="ArgumentException"><paramref name="columnNames"/> has the wrong length.</exception>
    /// <exception cref="DiffuseException">
    /// The data is not two-dimensional, has fewer than two rows, contains NaN or infinite values, or has a constant
    /// column (see <see cref="ConstantColumnTolerance"/>).
    /// </exception>
    public static Standardization Fit(Tensor data, IReadOnlyList<string>? columnNames = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.dim() != 2)
            throw new DiffuseException(
                $"Cannot fit a standardisation to data of shape {Shape(data)}: it needs a two-dimensional [rows, columns] table.");
        long rows = data.shape[0];
        int columns = checked((int)data.shape[1]);
        if (columnNames is not null && columnNames.Count != columns)
            throw new ArgumentException($"{columnNames.Count} column names were given for {columns} columns.", nameof(columnNames));
        if (columns == 0)
            throw new DiffuseException("Cannot fit a standardisation to data without columns: give at least one column.");
        if (rows < 2)
            throw new DiffuseException(
                $"Cannot fit a standardisation to {rows} {(rows == 1 ? "row" : "rows")}: a standard deviation needs at least two rows of data.");

        double[] mean, std, maxAbs;
        using (NewDisposeScope())
        {
            var x = data.detach().to(ScalarType.Float64, CPU);
            var mu = x.mean([0]);
            var centred = x - mu;
            var variance = (centred * centred).mean([0]);
            mean = mu.data<double>().ToArray();
            std = variance.sqrt().data<double>().ToArray();
            maxAbs = x.abs().amax([0]).data<double>().ToArray();
        }

        for (int c = 0; c < columns; c++)
        {
            string column = ColumnLabel(c, columnNames);
            if (!double.IsFinite(mean[c]) || !double.IsFinite(std[c]))
                throw new DiffuseException(
                    $"{Capitalise(column)} contains NaN or infinite values: remove or replace them before fitting.");
            if (!(std[c] > ConstantColumnTolerance * maxAbs[c]))
                throw new DiffuseException(
                    $"{Capitalise(column)} is constant (every value ≈ {mean[c].ToString("G6", CultureInfo.InvariantCulture)}): it carries no information to model; remove it.");
        }
        return new Standardization(mean, std);
    }

    /// <summary>The standardisation that changes nothing: mean 0 and std 1 for each of <paramref name="dims"/> columns.</summary>
    public static Standardization Identity(int dims)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dims);
        var std = new double[dims];
        Array.Fill(std, 1.0);
        return new Standardization(new double[dims], std);
    }

    /// <summary>
    /// Standardises <paramref name="x"/>: (x − mean) / std along its last dimension, which must have
    /// <see cref="Dimensions"/> entries. Computed in float64 and returned in the dtype of <paramref name="x"/> (float32
    /// for integer input), on its device, as a new tensor the caller owns.
    /// </summary>
    /// <exception cref="DiffuseException">The last dimension does not match, or the statistics are invalid.</exception>
    public Tensor Apply(Tensor x) => Transform(x, invert: false);

    /// <summary>
    /// Maps standardised values back to original units: z·std + mean along the last dimension. Same dtype, device and
    /// ownership rules as <see cref="Apply"/>.
    /// </summary>
    /// <exception cref="DiffuseException">The last dimension does not match, or the statistics are invalid.</exception>
    public Tensor Invert(Tensor z) => Transform(z, invert: true);

    /// <inheritdoc/>
    public bool Equals(Standardization? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (Mean.AsSpan().SequenceEqual(other.Mean) && Std.AsSpan().SequenceEqual(other.Std)));

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (double m in Mean) hash.Add(m);
        foreach (double s in Std) hash.Add(s);
        return hash.ToHashCode();
    }

    private Tensor Transform(Tensor x, bool invert)
    {
        ArgumentNullException.ThrowIfNull(x);
        Validate();
        if (x.dim() == 0 || x.shape[^1] != Dimensions)
            throw new DiffuseException(
                $"The data has shape {Shape(x)} but the standardisation was fitted to {Dimensions} {(Dimensions == 1 ? "column" : "columns")}: "
                + "give the same columns, in the same order, as the training data.");
        var dtype = x.is_floating_point() ? x.dtype : ScalarType.Float32;
        using var scope = NewDisposeScope();
        var mean = torch.tensor(Mean, ScalarType.Float64, x.device);
        var std = torch.tensor(Std, ScalarType.Float64, x.device);
        var wide = x.to(ScalarType.Float64);
        var result = invert ? wide * std + mean : (wide - mean) / std;
        return result.to(dtype).MoveToOuterDisposeScope();
    }

    private void Validate()
    {
        if (Mean is null || Std is null || Mean.Length == 0 || Mean.Length != Std.Length)
            throw new DiffuseException(
                $"The standardisation is invalid: it has {Mean?.Length ?? 0} means and {Std?.Length ?? 0} standard deviations; refit it with Standardization.Fit or check the saved statistics.");
        for (int c = 0; c < Std.Length; c++)
            if (!double.IsFinite(Mean[c]) || !double.IsFinite(Std[c]) || Std[c] <= 0)
                throw new DiffuseException(
                    $"The standardisation is invalid: column {c + 1} has mean {Mean[c].ToString(CultureInfo.InvariantCulture)} and std {Std[c].ToString(CultureInfo.InvariantCulture)} (a std must be positive and finite); refit it with Standardization.Fit or check the saved statistics.");
    }

    private static string ColumnLabel(int index, IReadOnlyList<string>? names) =>
        names is null ? $"column {index + 1}" : $"column {index + 1} ('{names[index]}')";

    private static string Capitalise(string text) => char.ToUpperInvariant(text[0]) + text[1..];

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
