using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffuse.Evaluation.Features;
using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>Settings of <see cref="ImageQualityReport.Evaluate"/>; every default is defined here once.</summary>
/// <param name="NearestNeighbours">k of the k-NN balls of precision and recall (Kynkäänniemi et al. 2019 use 3).</param>
/// <param name="KidSubsets">Random subsets averaged by the kernel distance.</param>
/// <param name="KidSubsetSize">Rows per subset of the kernel distance (capped at the smaller set).</param>
/// <param name="Seed">Seed of every random choice (kernel-distance subsets, the reference subset of precision and recall).</param>
public sealed record ImageQualityOptions(int NearestNeighbours = 3, int KidSubsets = 10, int KidSubsetSize = 1000, long Seed = 0)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (NearestNeighbours < 1) throw new DiffuseException($"the nearest-neighbour count k must be at least 1 (got {NearestNeighbours}).");
        if (KidSubsets < 1) throw new DiffuseException($"the kernel distance needs at least one subset (got {KidSubsets}).");
        if (KidSubsetSize < 2) throw new DiffuseException($"kernel-distance subsets need at least two rows (got {KidSubsetSize}).");
    }
}

/// <summary>
/// One image-quality metric of the generated images beside its noise floor: the same metric for real images, disjoint
/// from the reference, as many as were generated.
/// </summary>
/// <param name="Name">The metric and the features it is computed on, e.g. "FD (Diffuse Fashion-MNIST features)" or "FID".</param>
/// <param name="Value">The metric of the generated images against the reference set.</param>
/// <param name="ValueStdError">Its standard error (kernel distance only, <see cref="KidResult.StdError"/>; null otherwise).</param>
/// <param name="Floor">The metric of the floor set of real images against the reference set.</param>
/// <param name="FloorStdError">Its standard error (kernel distance only; null otherwise).</param>
/// <param name="HigherIsBetter">False for distances, true for precision, recall and accuracy.</param>
public sealed record ImageQualityMetric(string Name, double Value, double? ValueStdError, double Floor, double? FloorStdError, bool HigherIsBetter)
{
    /// <summary>
    /// <see cref="Value"/> / <see cref="Floor"/>: 1 means as close to the reference as real images; above 1 is worse for
    /// a distance, below 1 worse for the others. Null when the floor is not positive (the unbiased kernel distance of
    /// real images scatters around 0, where a ratio means nothing: compare the values with their standard errors instead).
    /// </summary>
    public double? Ratio => Floor > 0 && double.IsFinite(Value) ? Value / Floor : null;
}

/// <summary>
/// Image quality of generated images measured in the feature space of a fixed network, each metric beside its noise
/// floor: Fréchet distance (Heusel et al. 2017), the unbiased kernel distance (Bińkowski et al. 2018), improved
/// precision and recall (Kynkäänniemi et al. 2019) and, for class-conditional samples, the accuracy of the network's
/// classifier on the requested classes. Serialises to JSON as it is (<see cref="ToJson"/>); <see cref="ToTable"/>
/// formats it for a terminal. See docs/metrics.md for how to read it.
/// </summary>
/// <param name="Network">The feature network's <see cref="IImageFeatureNetwork.Name"/>.</param>
/// <param name="IsFid">True when the network is pytorch-fid's Inception-v3: the Fréchet distance is then FID.</param>
/// <param name="FeatureCount">The length of the feature vectors.</param>
/// <param name="GeneratedCount">Generated images N (and real images in the floor set).</param>
/// <param name="ReferenceCount">Real images in the reference set.</param>
/// <param name="PrecisionRecallReferenceCount">Reference images in the precision and recall manifold: min(N, reference), a seeded subset.</param>
/// <param name="FrechetDistance">Fréchet distance to the reference's Gaussian fit ("FID" on Inception, "FD (network)" otherwise).</param>
/// <param name="KernelDistance">Unbiased MMD² with the cubic polynomial kernel, mean over subsets ± its standard error ("KID" on Inception, "KD (network)" otherwise).</param>
/// <param name="Precision">Fraction of generated images inside the reference manifold.</param>
/// <param name="Recall">Fraction of reference images inside the generated manifold.</param>
/// <param name="ClassAccuracy">Fraction of generated images classified as the requested class; null without labels or logits.</param>
/// <param name="Options">The settings used.</param>
public sealed record ImageQualityReport(
    string Network,
    bool IsFid,
    int FeatureCount,
    int GeneratedCount,
    int ReferenceCount,
    int PrecisionRecallReferenceCount,
    ImageQualityMetric FrechetDistance,
    ImageQualityMetric KernelDistance,
    ImageQualityMetric Precision,
    ImageQualityMetric Recall,
    ImageQualityMetric? ClassAccuracy,
    ImageQualityOptions Options)
{
    /// <summary>The stream of <see cref="SeededNoise.Permutation"/> that picks the reference subset of precision and recall.</summary>
    public const ulong PrecisionRecallStream = StreamDomains.PrecisionRecallReference;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The metrics in table order (the class accuracy last, when measured).</summary>
    [JsonIgnore]
    public IReadOnlyList<ImageQualityMetric> Metrics =>
        ClassAccuracy is null ? [FrechetDistance, KernelDistance, Precision, Recall] : [FrechetDistance, KernelDistance, Precision, Recall, ClassAccuracy];

    /// <summary>
    /// Measures generated images against a reference set of real images, each metric beside its floor: the same metric
    /// for a second set of real images, disjoint from the reference and as many as were generated, against the same
    /// reference (a perfect generator scores the floor on average; every metric here depends on N, which is why it is
    /// compared at equal N and not against 0).
    /// </summary>
    /// <remarks>
    /// <para>1. Features (and logits, for the accuracy) of the three sets come from <paramref name="network"/> in
    /// batches (<see cref="IImageFeatureNetwork.Embed"/>).</para>
    /// <para>2. Fréchet distance: <see cref="FeatureMetrics.FrechetDistance(GaussianStatistics, GaussianStatistics)"/>
    /// between the Gaussian fit of the generated (floor) features and that of the whole reference.</para>
    /// <para>3. Kernel distance: <see cref="FeatureMetrics.KernelInceptionDistance"/> with the same seed for both, so
    /// generated and floor sets are compared on the same reference subsets.</para>
    /// <para>4. Precision and recall: <see cref="FeatureMetrics.PrecisionAndRecall"/> against min(N, R) reference
    /// images (a seeded subset, the same for both), since the k-NN radii depend on the set sizes and the paper compares
    /// equal sizes.</para>
    /// <para>5. Class accuracy, when <paramref name="generatedLabels"/> are given and the network has class logits:
    /// <see cref="FeatureMetrics.Accuracy"/> of the generated images on their requested classes; its floor is the
    /// accuracy on the floor images' true labels.</para>
    /// <para>Cost. Dominated by the network's forward passes (N + R + N images) and, for wide features, by the
    /// N × min(N, R) distances of precision and recall in float64.</para>
    /// </remarks>
    /// <param name="network">The feature network (kept by the caller).</param>
    /// <param name="generated">Generated images [N, C, H, W] in [−1, 1] (or uint8).</param>
    /// <param name="generatedLabels">The class requested for each generated image, or null for unconditional samples.</param>
    /// <param name="reference">Real reference images [R, C, H, W] (e.g. the test split), in [−1, 1] or uint8.</param>
    /// <param name="floor">N real images disjoint from the reference (e.g. part of the training split), in [−1, 1] or uint8.</param>
    /// <param name="floorLabels">The floor images' labels: needed for the accuracy floor when generated labels are given.</param>
    /// <param name="options">Settings; null for the defaults.</param>
    /// <exception cref="DiffuseException">
    /// The sets are too small or of the wrong shape, the floor set's size differs from N, or labels are missing, of the
    /// wrong count or outside the network's classes.
    /// </exception>
    public static ImageQualityReport Evaluate(IImageFeatureNetwork network, Tensor generated, long[]? generatedLabels,
        Tensor reference, Tensor floor, long[]? floorLabels, ImageQualityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(floor);
        options ??= new ImageQualityOptions();
        options.Validate();
        int k = options.NearestNeighbours;
        int n = CheckImages(generated, "generated", k);
        int r = CheckImages(reference, "reference", k);
        int floorCount = CheckImages(floor, "floor", k);
        if (floorCount != n)
            throw new DiffuseException($"the floor set has {floorCount} images but {n} were generated: the floor needs exactly as many real images (disjoint from the reference) as generated ones.");
        bool measureAccuracy = generatedLabels is not null && network.ClassCount > 0;
        if (measureAccuracy)
        {
            CheckLabels(generatedLabels!, n, network, "generated");
            if (floorLabels is null)
                throw new DiffuseException("generated labels were given but no floor labels: the accuracy floor needs the true labels of the floor images.");
            CheckLabels(floorLabels, n, network, "floor");
        }

        using var scope = NewDisposeScope();
        var (genFeatures, genLogits) = network.Embed(generated);
        var refFeatures = network.Features(reference);
        var (floorFeatures, floorLogits) = network.Embed(floor);
        string name = network.Name;
        bool fid = network.IsFidInception;

        var referenceFit = GaussianStatistics.Fit(refFeatures);
        var fd = new ImageQualityMetric(fid ? "FID" : $"FD ({name})",
            FeatureMetrics.FrechetDistance(GaussianStatistics.Fit(genFeatures), referenceFit), null,
            FeatureMetrics.FrechetDistance(GaussianStatistics.Fit(floorFeatures), referenceFit), null, HigherIsBetter: false);

        var kidGenerated = FeatureMetrics.KernelInceptionDistance(genFeatures, refFeatures, options.KidSubsets, options.KidSubsetSize, options.Seed);
        var kidFloor = FeatureMetrics.KernelInceptionDistance(floorFeatures, refFeatures, options.KidSubsets, options.KidSubsetSize, options.Seed);
        var kd = new ImageQualityMetric(fid ? "KID" : $"KD ({name})", kidGenerated.Mean, kidGenerated.StdError, kidFloor.Mean, kidFloor.StdError, HigherIsBetter: false);

        int manifold = Math.Min(n, r);
        var manifoldRows = manifold == r
            ? refFeatures
            : refFeatures.index_select(0, tensor(SeededNoise.Permutation(unchecked((ulong)options.Seed), PrecisionRecallStream, r)
                .Take(manifold).Select(i => (long)i).ToArray()));
        var prGenerated = FeatureMetrics.PrecisionAndRecall(manifoldRows, genFeatures, k);
        var prFloor = FeatureMetrics.PrecisionAndRecall(manifoldRows, floorFeatures, k);
        var precision = new ImageQualityMetric($"precision ({name}, k = {k})", prGenerated.Precision, null, prFloor.Precision, null, HigherIsBetter: true);
        var recall = new ImageQualityMetric($"recall ({name}, k = {k})", prGenerated.Recall, null, prFloor.Recall, null, HigherIsBetter: true);

        ImageQualityMetric? accuracy = null;
        if (measureAccuracy && genLogits is not null && floorLogits is not null)
            accuracy = new ImageQualityMetric($"class accuracy ({name})",
                FeatureMetrics.Accuracy(genLogits, tensor(generatedLabels!)), null,
                FeatureMetrics.Accuracy(floorLogits, tensor(floorLabels!)), null, HigherIsBetter: true);

        return new ImageQualityReport(name, fid, network.FeatureCount, n, r, manifold, fd, kd, precision, recall, accuracy, options);
    }

    /// <summary>
    /// An aligned text table, one row per metric: metric | samples | floor | ratio, under a line naming the sets and
    /// followed by a line on how to read it. Numbers are invariant-culture, four significant digits.
    /// </summary>
    public string ToTable()
    {
        var rows = new List<string[]> { new[] { "metric", "samples", "floor", "ratio" } };
        foreach (var m in Metrics)
            rows.Add([m.Name, Format(m.Value, m.ValueStdError), Format(m.Floor, m.FloorStdError),
                m.Ratio is double ratio ? ratio.ToString("F2", CultureInfo.InvariantCulture) : "-"]);
        var widths = Enumerable.Range(0, 4).Select(c => rows.Max(row => row[c].Length)).ToArray();
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"Image quality on {Network} ({FeatureCount}-d): {GeneratedCount} generated images vs {ReferenceCount} reference images; " +
            $"floor = {GeneratedCount} other real images vs the same reference\n");
        foreach (var row in rows)
        {
            text.Append(row[0].PadRight(widths[0]));
            for (int c = 1; c < 4; c++) text.Append("  ").Append(row[c].PadLeft(widths[c]));
            text.Append('\n');
        }
        text.Append("ratio = samples / floor: 1 is as good as real images of the same count; distances (FD, KD) worse above 1, the others worse below 1.\n");
        return text.ToString();
    }

    /// <summary>The report as indented camelCase JSON (null members left out); <see cref="FromJson"/> reads it back.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    /// <exception cref="DiffuseException">The text is not such a report.</exception>
    public static ImageQualityReport FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<ImageQualityReport>(json, Json) ?? throw new DiffuseException("the image-quality report is empty (null).");
        }
        catch (JsonException e)
        {
            throw new DiffuseException($"not an image-quality report: {e.Message}", e);
        }
    }

    private static string Format(double value, double? stdError)
    {
        string v = value.ToString("G4", CultureInfo.InvariantCulture);
        return stdError is double se ? $"{v} ± {se.ToString("G2", CultureInfo.InvariantCulture)}" : v;
    }

    private static int CheckImages(Tensor images, string what, int k)
    {
        if (images.dim() != 4)
            throw new DiffuseException($"the {what} images must be [N, C, H, W]; got shape [{string.Join(", ", images.shape)}].");
        if (images.shape[0] <= k + 1)
            throw new DiffuseException($"the {what} set has {images.shape[0]} images; precision and recall with k = {k} need at least {k + 2}.");
        return (int)images.shape[0];
    }

    private static void CheckLabels(long[] labels, int count, IImageFeatureNetwork network, string what)
    {
        if (labels.Length != count)
            throw new DiffuseException($"{labels.Length} {what} labels were given for {count} images.");
        foreach (long label in labels)
            if (label < 0 || label >= network.ClassCount)
                throw new DiffuseException($"{what} label {label} is outside the {network.ClassCount} classes of {network.Name}.");
    }
}
