using Diffuse.Data.Images;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Randomness;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.SampleQuality;

public class MemorizationTests
{
    /// <summary>
    /// Structured 8-bit images [count, 1, 8, 8]: a smooth gradient of random direction and offset plus a little pixel
    /// noise, so that real images of this kind lie near each other and far from pure noise.
    /// </summary>
    static Tensor SmoothImages(ulong seed, int count)
    {
        using var scope = NewDisposeScope();
        var coefficients = SeededNoise.Normal(seed, 0, 0, count, [3]).view(count, 3, 1, 1);
        var y = linspace(-1, 1, 8).view(1, 1, 8, 1);
        var x = linspace(-1, 1, 8).view(1, 1, 1, 8);
        var image = (coefficients.narrow(1, 0, 1) * 0.4 * x + coefficients.narrow(1, 1, 1) * 0.4 * y + coefficients.narrow(1, 2, 1) * 0.2)
            + SeededNoise.Normal(seed, 1, 0, count, [1, 8, 8]) * 0.05;
        return ImageDataset.ToBytes(image.clamp(-1, 1)).MoveToOuterDisposeScope();
    }

    [Fact]
    public void SamplesThatAreTrainingImagesAreFoundAtDistanceZero()
    {
        using var scope = NewDisposeScope();
        var training = SmoothImages(1, 300);
        var heldOut = SmoothImages(2, 100);
        var copied = new long[] { 17, 3, 250, 99, 3 };
        var samples = training.index_select(0, tensor(copied));

        var report = Memorization.Check(samples, training, heldOut);

        Assert.All(report.SampleDistances, d => Assert.Equal(0.0, d));
        Assert.Equal(copied, report.NearestTraining);
        Assert.Equal(1.0, report.CopyFraction);
        Assert.Equal(0.0, report.MedianSampleDistance);
        Assert.True(report.MedianHeldOutDistance > 0.1, $"held-out median {report.MedianHeldOutDistance}");
        Assert.Equal(300, report.TrainingCount);
        Assert.Contains("100.0 %", report.Format());
    }

    [Fact]
    public void FreshNoiseIsNotACopyAndHeldOutImagesSitAtThePercentile()
    {
        using var scope = NewDisposeScope();
        var training = SmoothImages(1, 300);
        var heldOut = SmoothImages(2, 200);
        var noise = (SeededNoise.Normal(3, 0, 0, 100, [1, 8, 8]) * 0.5).clamp(-1, 1);

        var report = Memorization.Check(noise, training, heldOut, percentile: 5);
        Assert.Equal(0.0, report.CopyFraction);
        Assert.True(report.MedianSampleDistance > 2 * report.MedianHeldOutDistance);

        // Real images the model never saw are, by construction of the threshold, at the percentile (5 % ± sampling).
        var fresh = Memorization.Check(SmoothImages(4, 200), training, heldOut, percentile: 5);
        Assert.InRange(fresh.CopyFraction, 0.0, 0.15);
        Assert.Equal(Memorization.Quantile(fresh.HeldOutDistances, 0.05), fresh.Threshold, 12);
    }

    [Fact]
    public void TheNearestImageMatchesABruteForceSearchWhateverTheBlockSize()
    {
        using var scope = NewDisposeScope();
        var training = SmoothImages(5, 70);
        var queries = SmoothImages(6, 9);
        var (distances, indices) = Memorization.Nearest(queries, training, batchSize: 16);
        var (same, sameIndices) = Memorization.Nearest(queries, training, batchSize: 1000);
        Assert.Equal(distances, same);
        Assert.Equal(indices, sameIndices);

        // Pixels in the model range, mapped in float64 as the search does.
        var q = (queries.to_type(ScalarType.Float64) / 127.5 - 1).flatten(1);
        var t = (training.to_type(ScalarType.Float64) / 127.5 - 1).flatten(1);
        var all = (q.unsqueeze(1) - t.unsqueeze(0)).square().sum(2).sqrt();
        var (expected, expectedIndex) = all.min(1);
        Assert.Equal(expectedIndex.data<long>().ToArray(), indices);
        var e = expected.data<double>().ToArray();
        for (int i = 0; i < e.Length; i++) Assert.Equal(e[i], distances[i], 10);
    }

    [Fact]
    public void MismatchedShapesAreAClearError()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<DiffuseException>(() => Memorization.Nearest(zeros(2, 1, 8, 8), zeros(3, 1, 4, 4)));
        Assert.Contains("same size", e.Message);
    }
}
