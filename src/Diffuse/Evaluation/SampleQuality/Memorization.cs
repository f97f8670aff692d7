using System.Globalization;
using System.Text;
using Diffuse.Data.Images;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>
/// What <see cref="Memorization.Check"/> found: for every generated image its nearest training image and the distance
/// to it, the same distances for held-out real images, and how many generated images are closer to a training image
/// than almost any real image that was not trained on.
/// </summary>
/// <param name="SampleDistances">For each generated image, the pixel L2 distance (model range [−1, 1]) to its nearest training image.</param>
/// <param name="NearestTraining">For each generated image, the index of that training image.</param>
/// <param name="HeldOutDistances">For each held-out real image, the distance to its nearest training image.</param>
/// <param name="TrainingCount">Training images searched.</param>
/// <param name="Percentile">The percentile of <see cref="HeldOutDistances"/> that sets <see cref="Threshold"/> (e.g. 1).</param>
/// <param name="Threshold">That percentile of the held-out distances (linear interpolation between order statistics).</param>
/// <param name="CopyFraction">
/// The fraction of generated images whose nearest distance is at most <see cref="Threshold"/>: about
/// <see cref="Percentile"/>/100 for a model that does not copy (what held-out real images give by construction), near 1
/// for one that reproduces its training images.
/// </param>
public sealed record MemorizationReport(
    IReadOnlyList<double> SampleDistances,
    IReadOnlyList<long> NearestTraining,
    IReadOnlyList<double> HeldOutDistances,
    int TrainingCount,
    double Percentile,
    double Threshold,
    double CopyFraction)
{
    /// <summary>The median of <see cref="SampleDistances"/>.</summary>
    public double MedianSampleDistance => Memorization.Quantile(SampleDistances, 0.5);

    /// <summary>The median of <see cref="HeldOutDistances"/>.</summary>
    public double MedianHeldOutDistance => Memorization.Quantile(HeldOutDistances, 0.5);

    /// <summary>The indices of the <paramref name="count"/> generated images closest to a training image, closest first.</summary>
    public int[] Closest(int count) =>
        Enumerable.Range(0, SampleDistances.Count).OrderBy(i => SampleDistances[i]).ThenBy(i => i).Take(count).ToArray();

    /// <summary>Three lines for a terminal: the medians, the copy fraction beside its expected value, and what the distance is.</summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.Append(c, $"memorisation: nearest of {TrainingCount} training images in pixel L2 (images in [-1, 1])\n");
        text.Append(c, $"  median nearest distance: {SampleDistances.Count} samples {MedianSampleDistance:F3}, {HeldOutDistances.Count} held-out real images {MedianHeldOutDistance:F3}\n");
        text.Append(c, $"  samples within {Threshold:F3} of a training image (percentile {Percentile:0.##} of the held-out distances): ");
        text.Append(c, $"{CopyFraction:P1} (about {Percentile / 100:P0} for a model that does not copy, 100 % for copies)\n");
        return text.ToString();
    }
}

/// <summary>
/// A memorisation check for small data sets: does the model reproduce its training images? For each generated image it
/// finds the nearest training image in pixel space and compares those distances with the distances from held-out real
/// images (never trained on) to the training set. A model that generalises produces images about as far from the
/// training set as new real images are; a model that copies produces images much closer, down to distance 0.
/// </summary>
/// <remarks>
/// <para>Distance. Euclidean distance between the flattened images in the model range [−1, 1] (uint8 pixels are mapped by
/// <see cref="ImageDataset.ToModelRange"/>); 2/255 per grey level. Pixel distance is crude: it does not see a shifted or
/// mirrored copy, which is why the check compares with real held-out images rather than with a fixed threshold.</para>
/// <para>Search. Exhaustive: float32 squared distances |q|² + |t|² − 2q·t by matrix products in blocks (one dispose scope
/// per block), keeping a few candidates per query, whose exact distances are then recomputed in float64 (the float32
/// expansion cancels badly near 0, and an exact copy must come out at exactly 0). Cost: 2·D flops per pair, so
/// (generated + held-out) × training × D multiply-adds.</para>
/// </remarks>
public static class Memorization
{
    /// <summary>The default percentile of the held-out distances below which a sample counts as a near copy.</summary>
    public const double DefaultPercentile = 1;

    /// <summary>Candidates kept per query in the float32 pass before the exact float64 check.</summary>
    private const int Candidates = 4;

    /// <summary>
    /// Finds the nearest training image of every generated image and of every held-out image, and the fraction of
    /// generated images closer to a training image than the <paramref name="percentile"/>th percentile of the held-out
    /// images' nearest distances.
    /// </summary>
    /// <param name="generated">Generated images [N, C, H, W], uint8 or in [−1, 1] (quantise them first to measure saved PNG files).</param>
    /// <param name="training">The training images [M, C, H, W], uint8 or in [−1, 1].</param>
    /// <param name="heldOut">Real images that were not trained on [R, C, H, W] (e.g. the test split), uint8 or in [−1, 1].</param>
    /// <param name="percentile">The percentile (0 … 100) of the held-out distances that is the threshold (default 1).</param>
    /// <param name="batchSize">Rows per block of the search (limits memory, does not change the result).</param>
    /// <param name="onProgress">Called after each block with (training images searched, total) over both searches.</param>
    /// <exception cref="DiffuseException">A set is empty, the shapes differ, or the percentile is outside 0 … 100.</exception>
    public static MemorizationReport Check(Tensor generated, Tensor training, Tensor heldOut, double percentile = DefaultPercentile, int batchSize = 1024,
        Action<long, long>? onProgress = null)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(heldOut);
        if (!(percentile >= 0 && percentile <= 100)) throw new DiffuseException($"the percentile must lie in 0 … 100 (got {percentile}).");
        long m = training.shape[0];
        var (sampleDistances, nearest) = Nearest(generated, training, batchSize, onProgress is null ? null : (done, _) => onProgress(done, 2 * m));
        var (heldOutDistances, _) = Nearest(heldOut, training, batchSize, onProgress is null ? null : (done, _) => onProgress(m + done, 2 * m));
        double threshold = Quantile(heldOutDistances, percentile / 100);
        double fraction = sampleDistances.Count(d => d <= threshold) / (double)sampleDistances.Length;
        return new MemorizationReport(sampleDistances, nearest, heldOutDistances, (int)training.shape[0], percentile, threshold, fraction);
    }

    /// <summary>
    /// For each of <paramref name="queries"/> [N, C, H, W] the nearest of <paramref name="training"/> [M, C, H, W] in pixel
    /// L2 (model range [−1, 1]; uint8 is mapped): the exact float64 distances and the training indices (the lowest index
    /// among exact ties).
    /// </summary>
    /// <param name="queries">The images whose nearest training image is wanted.</param>
    /// <param name="training">The images searched.</param>
    /// <param name="batchSize">Training images per block (limits memory, does not change the result).</param>
    /// <param name="onProgress">Called after each block with (training images searched, total).</param>
    /// <exception cref="DiffuseException">A set is empty or the image shapes differ.</exception>
    public static (double[] Distances, long[] Indices) Nearest(Tensor queries, Tensor training, int batchSize = 1024, Action<long, long>? onProgress = null)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(training);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (queries.dim() < 2 || training.dim() < 2 || queries.shape[0] < 1 || training.shape[0] < 1)
            throw new DiffuseException($"the memorisation check needs non-empty sets of images; got shapes [{string.Join(", ", queries.shape)}] and [{string.Join(", ", training.shape)}].");
        if (!queries.shape.Skip(1).SequenceEqual(training.shape.Skip(1)))
            throw new DiffuseException($"the images to check are [{string.Join(", ", queries.shape.Skip(1))}] but the training images are [{string.Join(", ", training.shape.Skip(1))}]: give images of the same size.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        long n = queries.shape[0], m = training.shape[0];
        int k = (int)Math.Min(Candidates, m);
        var q = Flat(queries, ScalarType.Float32);
        var qNorm = q.square().sum(1, keepdim: true);
        // Running candidates per query: squared float32 distances [N, k] and training indices [N, k].
        Tensor best = full(n, k, float.PositiveInfinity), bestIndex = zeros(n, k, ScalarType.Int64);
        for (long start = 0; start < m; start += batchSize)
        {
            using var block = NewDisposeScope();
            long size = Math.Min(batchSize, m - start);
            var t = Flat(training.narrow(0, start, size), ScalarType.Float32);
            var tNorm = t.square().sum(1).unsqueeze(0);
            var d2 = (qNorm + tNorm).sub_(q.matmul(t.t()).mul_(2));
            var (values, indices) = cat([best, d2], 1).topk(k, 1, largest: false, sorted: true);
            var allIndices = cat([bestIndex, arange(start, start + size, ScalarType.Int64).unsqueeze(0).expand(n, -1)], 1);
            var nextIndex = allIndices.gather(1, indices);
            best.Dispose();
            bestIndex.Dispose();
            best = values.MoveToOuterDisposeScope();
            bestIndex = nextIndex.MoveToOuterDisposeScope();
            onProgress?.Invoke(start + size, m);
        }
        // The exact distances of the candidates, in float64; the smallest wins, ties to the lowest index.
        var q64 = Flat(queries, ScalarType.Float64);
        var candidates = Flat(training.index_select(0, bestIndex.flatten()), ScalarType.Float64).view(n, k, -1);
        var exact = (candidates - q64.unsqueeze(1)).square().sum(2).sqrt().data<double>().ToArray();
        var candidateIndices = bestIndex.data<long>().ToArray();
        var distances = new double[n];
        var chosen = new long[n];
        for (int i = 0; i < n; i++)
        {
            distances[i] = double.PositiveInfinity;
            for (int j = 0; j < k; j++)
            {
                double d = exact[i * k + j];
                long index = candidateIndices[i * k + j];
                if (d < distances[i] || d == distances[i] && index < chosen[i]) (distances[i], chosen[i]) = (d, index);
            }
        }
        return (distances, chosen);
    }

    /// <summary>The <paramref name="p"/>-quantile (0 … 1) of <paramref name="values"/> with linear interpolation between order statistics.</summary>
    public static double Quantile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        double position = Math.Clamp(p, 0, 1) * (sorted.Length - 1);
        int lower = (int)Math.Floor(position);
        int upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + (position - lower) * (sorted[upper] - sorted[lower]);
    }

    /// <summary>Images as rows [N, D] of the model range in <paramref name="type"/> (uint8 pixels mapped exactly).</summary>
    private static Tensor Flat(Tensor images, ScalarType type)
    {
        var x = images.dtype == ScalarType.Byte ? images.to_type(type).div_(127.5).sub_(1.0) : images.to_type(type);
        return x.reshape(images.shape[0], -1);
    }
}
