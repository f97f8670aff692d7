using static TorchSharp.torch;
using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;

namespace Diffuse.Tests.Evaluation.SampleQuality;

public class FrechetDistanceMetricTests
{
    [Fact]
    public void TheMetricIsTheFeatureFrechetDistanceOfTheQuantisedImagesAndMatchesWithinTenPercent()
    {
        using var scope = NewDisposeScope();
        using var network = new FeatureClassifier(new FeatureClassifierConfig(1, 8, 8, 2, Features: 8)) { Dataset = "tiny" };
        manual_seed(3);
        var reference = randint(0, 256, new long[] { 30, 1, 8, 8 }, ScalarType.Byte);
        var generated = (rand(new long[] { 30, 1, 8, 8 }) * 2 - 1) * 0.5;
        var metric = new FrechetDistanceMetric(network, reference);
        Assert.Equal("FD (Diffuse tiny features)", metric.Name);
        Assert.False(metric.HigherIsBetter);
        Assert.Equal(30, metric.ReferenceCount);

        // The reference against itself is at distance ≈ 0; floats and their 8-bit pixels measure the same.
        Assert.True(Math.Abs(metric.Measure(reference).Value) < 1e-3 * metric.Measure(generated).Value);
        var measured = metric.Measure(generated);
        Assert.Equal(measured.Value, metric.Measure(Diffuse.Data.Images.ImageDataset.ToBytes(generated)).Value);
        Assert.True(double.IsNaN(measured.StdError));
        Assert.Equal(FeatureMetrics.FrechetDistance(network.Features(Diffuse.Data.Images.ImageDataset.ToBytes(generated)), network.Features(reference)),
            measured.Value, 6);

        var at = (double v) => new QualityMeasurement(v, double.NaN, []);
        Assert.True(metric.Matches(at(10.9), at(10)));
        Assert.True(metric.Matches(at(3), at(10)));
        Assert.False(metric.Matches(at(11.1), at(10)));
    }
}
