using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Data;

/// <summary>A table of training data with its name and column names.</summary>
/// <param name="Source">What the user gave: a toy distribution's name or a CSV path.</param>
/// <param name="Columns">Column names.</param>
/// <param name="Rows">The data [N, D], float32, in original units (owned by this object).</param>
/// <param name="IsToy">True for a built-in distribution (which can draw fresh held-out points).</param>
public sealed record TabularData(string Source, string[] Columns, Tensor Rows, bool IsToy) : IDisposable
{
    /// <inheritdoc />
    public void Dispose() => Rows.Dispose();
}

/// <summary>
/// Resolves a <c>--data</c> argument (a built-in 2-D distribution or a numeric CSV file) and makes the train/held-out
/// split. Built-in distributions draw training points from seed <see cref="ToyTrainSeed"/> and held-out points from
/// <see cref="ToyHeldOutSeed"/>, so held-out points are fresh draws. CSV files are split by a seeded permutation.
/// </summary>
public static class TabularSource
{
    /// <summary>Seed of the training draw of built-in distributions.</summary>
    public const long ToyTrainSeed = 0;
    /// <summary>Seed of the held-out draw of built-in distributions.</summary>
    public const long ToyHeldOutSeed = 1_000_003;
    /// <summary>Seed of the permutation that splits CSV files.</summary>
    public const ulong SplitSeed = 20_240_601;

    /// <summary>True when <paramref name="data"/> names a built-in distribution.</summary>
    public static bool IsToy(string data) => ToyData.TryParse(data, out _);

    /// <summary>Loads the training data: <paramref name="toyCount"/> points of a built-in distribution, or every row of a CSV file.</summary>
    public static TabularData Load(string data, int toyCount)
    {
        if (ToyData.TryParse(data, out var kind))
            return new TabularData(ToyData.NameOf(kind), new[] { "x", "y" }, ToyData.Sample(kind, toyCount, ToyTrainSeed), true);
        if (!data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) && !File.Exists(data))
            throw new DiffuseException($"unknown data '{data}': give a built-in distribution ({string.Join(", ", ToyData.Names)}) or the path of a numeric CSV file with a header row.");
        var table = CsvTable.Load(data);
        return new TabularData(data, table.Columns.ToArray(), table.ToTensor(), false);
    }

    /// <summary>Fresh held-out points of a built-in distribution (independent of the training draw).</summary>
    public static Tensor ToyHeldOut(string data, int count)
    {
        var kind = ToyData.Parse(data);
        return ToyData.Sample(kind, count, ToyHeldOutSeed);
    }

    /// <summary>
    /// Splits rows into (train, held-out) with a seeded permutation: the last ⌈fraction·N⌉ rows of the permutation are
    /// held out. Returns new tensors owned by the caller.
    /// </summary>
    public static (Tensor Train, Tensor HeldOut) Split(Tensor rows, double fraction)
    {
        if (!(fraction > 0 && fraction < 1)) throw new DiffuseException($"the held-out fraction must lie strictly between 0 and 1 (got {fraction}).");
        int n = (int)rows.shape[0];
        int held = (int)Math.Ceiling(fraction * n);
        if (held < 1 || n - held < 2) throw new DiffuseException($"{n} rows are too few to hold out {fraction:P0} and still train; add rows or use {Param.Of("TabularSource.Split(fraction) = 0", "every row for training")}.");
        var permutation = SeededNoise.Permutation(SplitSeed, StreamDomains.TabularSplit, n).Select(i => (long)i).ToArray();
        using var index = tensor(permutation);
        return (rows.index_select(0, index.narrow(0, 0, n - held)), rows.index_select(0, index.narrow(0, n - held, held)));
    }
}
