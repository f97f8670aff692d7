using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.SampleQuality;

public class ImageQualityReportTests
{
    /// <summary>
    /// A fixed small network for tests: features tanh(W·x) of the flattened 1×8×8 image with a seeded W [64 → 16], and
    /// "perfect" logits that read the class from the image's mean pixel (class c images have mean c/10), or none.
    /// </summary>
    sealed class FixedNetwork(bool withLogits) : IImageFeatureNetwork
    {
        readonly Tensor weights = SeededNoise.Normal(99, 0, 0, 64, [16]) / 8;

        public string Name => "fixed test features";
        public bool IsFidInception => false;
        public int InputChannels => 1;
        public int InputHeight => 8;
        public int InputWidth => 8;
        public int FeatureCount => 16;
        public int ClassCount => withLogits ? 10 : 0;

        public Tensor Features(Tensor images) => Embed(images).Features;

        public (Tensor Features, Tensor? Logits) Embed(Tensor images)
        {
            using var scope = NewDisposeScope();
            var flat = images.to(ScalarType.Float32).flatten(1);
            var features = flat.matmul(weights).tanh();
            Tensor? logits = null;
            if (withLogits)
            {
                var classes = arange(10, dtype: ScalarType.Float32) / 10;
                logits = -(flat.mean([1], keepdim: true) - classes.unsqueeze(0)).abs() * 100;
            }
            return (features.MoveToOuterDisposeScope(), logits?.MoveToOuterDisposeScope());
        }

        public void Dispose() => weights.Dispose();
    }

    static Tensor GaussianImages(ulong seed, int count) => SeededNoise.Normal(seed, 0, 0, count, [1, 8, 8]) * 0.5;

    /// <summary>Images of class c: mean c/10 plus noise of sd 0.01 (so the fake logits classify them perfectly).</summary>
    static (Tensor Images, long[] Labels) ClassImages(ulong seed, int count)
    {
        var labels = Enumerable.Range(0, count).Select(i => (long)(i * 7 % 10)).ToArray();
        var means = tensor(labels).to(ScalarType.Float32).div(10).reshape(count, 1, 1, 1);
        return (means + SeededNoise.Normal(seed, 0, 0, count, [1, 8, 8]) * 0.01, labels);
    }

    [Fact]
    public void SamplesFromTheReferenceDistributionScoreTheFloorAndAShiftDoesNot()
    {
        using var scope = NewDisposeScope();
        using var network = new FixedNetwork(withLogits: false);
        var reference = GaussianImages(1, 1200);
        var floor = GaussianImages(2, 600);
        var same = GaussianImages(3, 600);
        var report = ImageQualityReport.Evaluate(network, same, null, reference, floor, null);

        Assert.Equal("FD (fixed test features)", report.FrechetDistance.Name);
        Assert.Equal("KD (fixed test features)", report.KernelDistance.Name);
        Assert.Null(report.ClassAccuracy);
        Assert.Equal(600, report.PrecisionRecallReferenceCount);
        // FD of N real points is positive (finite-sample bias); the samples' FD is the same up to noise.
        Assert.True(report.FrechetDistance.Floor > 0);
        Assert.InRange(report.FrechetDistance.Ratio!.Value, 0.6, 1.6);
        // The unbiased kernel distance of either set scatters around 0.
        Assert.InRange(report.KernelDistance.Value, -4 * report.KernelDistance.ValueStdError!.Value - 1e-5, 4 * report.KernelDistance.ValueStdError.Value + 1e-5);
        Assert.InRange(report.KernelDistance.Floor, -4 * report.KernelDistance.FloorStdError!.Value - 1e-5, 4 * report.KernelDistance.FloorStdError.Value + 1e-5);
        Assert.InRange(report.Precision.Value - report.Precision.Floor, -0.05, 0.05);
        Assert.InRange(report.Recall.Value - report.Recall.Floor, -0.05, 0.05);

        var shifted = ImageQualityReport.Evaluate(network, same + 0.3, null, reference, floor, null);
        Assert.True(shifted.FrechetDistance.Ratio > 5, $"FD ratio of shifted samples {shifted.FrechetDistance.Ratio}");
        Assert.True(shifted.KernelDistance.Value > 10 * shifted.KernelDistance.FloorStdError!.Value);
        Assert.True(shifted.Precision.Value < shifted.Precision.Floor - 0.1);
        Assert.Equal(report.FrechetDistance.Floor, shifted.FrechetDistance.Floor);
    }

    [Fact]
    public void AccuracyIsOneForRealImagesOfTheRequestedClassAndZeroForWrongRequests()
    {
        using var scope = NewDisposeScope();
        using var network = new FixedNetwork(withLogits: true);
        var (reference, _) = ClassImages(1, 200);
        var (floor, floorLabels) = ClassImages(2, 100);
        var (generated, labels) = ClassImages(3, 100);

        var report = ImageQualityReport.Evaluate(network, generated, labels, reference, floor, floorLabels);
        Assert.NotNull(report.ClassAccuracy);
        Assert.Equal("class accuracy (fixed test features)", report.ClassAccuracy!.Name);
        Assert.Equal(1.0, report.ClassAccuracy.Value);
        Assert.Equal(1.0, report.ClassAccuracy.Floor);
        Assert.Equal(1.0, report.ClassAccuracy.Ratio);

        var wrong = labels.Select(l => (l + 1) % 10).ToArray();
        Assert.Equal(0.0, ImageQualityReport.Evaluate(network, generated, wrong, reference, floor, floorLabels).ClassAccuracy!.Value);
    }

    [Fact]
    public void TableAndJsonNameTheFeaturesAndRoundTrip()
    {
        using var scope = NewDisposeScope();
        using var network = new FixedNetwork(withLogits: true);
        var (reference, _) = ClassImages(1, 60);
        var (floor, floorLabels) = ClassImages(2, 30);
        var (generated, labels) = ClassImages(3, 30);
        var report = ImageQualityReport.Evaluate(network, generated, labels, reference, floor, floorLabels, new ImageQualityOptions(KidSubsets: 3, KidSubsetSize: 20));

        string table = report.ToTable();
        Assert.DoesNotContain("FID", table);
        var lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("metric", lines[1]);
        Assert.Contains("ratio", lines[1]);
        Assert.Equal(8, lines.Length); // what was compared, column names, five metrics, how to read the ratio
        // Every metric row is as wide as the column header: the columns line up.
        Assert.All(lines.Skip(1).Take(6), line => Assert.Equal(lines[1].Length, line.Length));
        Assert.StartsWith("FD (fixed test features)", lines[2]);

        string json = report.ToJson();
        Assert.Contains("\"frechetDistance\"", json);
        Assert.Contains("\"ratio\"", json);
        var back = ImageQualityReport.FromJson(json);
        Assert.Equal(report, back);
    }

    [Fact]
    public void AFloorSetOfAnotherSizeOrMissingFloorLabelsIsRejected()
    {
        using var scope = NewDisposeScope();
        using var network = new FixedNetwork(withLogits: true);
        var (reference, _) = ClassImages(1, 40);
        var (floor, floorLabels) = ClassImages(2, 20);
        var (generated, labels) = ClassImages(3, 30);
        var error = Assert.Throws<DiffuseException>(() => ImageQualityReport.Evaluate(network, generated, null, reference, floor, null));
        Assert.Contains("exactly as many", error.Message);
        var twenty = generated.narrow(0, 0, 20);
        error = Assert.Throws<DiffuseException>(() => ImageQualityReport.Evaluate(network, twenty, labels.Take(20).ToArray(), reference, floor, null));
        Assert.Contains("floor labels", error.Message);
        Assert.Throws<DiffuseException>(() => ImageQualityReport.Evaluate(network, twenty, labels.Take(20).Select(_ => 10L).ToArray(), reference, floor, floorLabels));
    }
}
