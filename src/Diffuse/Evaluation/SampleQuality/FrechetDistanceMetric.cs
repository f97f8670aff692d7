using Diffuse.Data.Images;
using Diffuse.Evaluation.Features;
using static TorchSharp.torch;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>
/// The Fréchet distance on the features of a fixed network as an <see cref="ISampleQualityMetric"/>, for image models
/// (lower is better; FID on pytorch-fid's Inception-v3): the Gaussian fit of the reference images' features is made
/// once, and each <see cref="Measure"/> embeds the images it is given and returns
/// <see cref="FeatureMetrics.FrechetDistance(GaussianStatistics, GaussianStatistics)"/> to that fit. Generated images
/// in [−1, 1] are first quantised to the 8-bit pixels a user would save (<see cref="ImageDataset.ToBytes"/>), as
/// <c>diffuse eval</c> does, so that a measurement equals the FD that <c>eval</c> prints for the same images and
/// reference. The distance depends on the number of images, so compare settings at one count only, and read them
/// beside <see cref="Measure"/> of as many real images (the floor). There is no standard error (NaN).
/// </summary>
public sealed class FrechetDistanceMetric : ISampleQualityMetric
{
    /// <summary>A setting matches the reference when its FD is at most this fraction above the reference's (10%: the target).</summary>
    public const double Tolerance = 0.10;

    private readonly IImageFeatureNetwork _network;
    private readonly GaussianStatistics _reference;

    /// <summary>Fits the reference: the features of <paramref name="reference"/> [R, C, H, W] (in [−1, 1] or uint8, R ≥ 2).</summary>
    /// <param name="network">The feature network (kept by the caller, who disposes it after the last measurement).</param>
    /// <param name="reference">Real reference images, e.g. a subset of the test split (kept by the caller).</param>
    public FrechetDistanceMetric(IImageFeatureNetwork network, Tensor reference)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(reference);
        _network = network;
        using (var features = network.Features(reference)) _reference = GaussianStatistics.Fit(features);
        ReferenceCount = (int)reference.shape[0];
        Name = network.IsFidInception ? "FID" : $"FD ({network.Name})";
    }

    /// <summary>The number of reference images the fit was made on.</summary>
    public int ReferenceCount { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public string Unit => "squared feature units";

    /// <inheritdoc />
    public bool HigherIsBetter => false;

    /// <summary>
    /// The Fréchet distance of <paramref name="generated"/> [N, C, H, W] (N ≥ 2; floats in [−1, 1], quantised to 8 bits
    /// first, or uint8 pixels as they are) to the reference fit.
    /// </summary>
    public QualityMeasurement Measure(Tensor generated)
    {
        ArgumentNullException.ThrowIfNull(generated);
        using var scope = NewDisposeScope();
        var pixels = generated.dtype == ScalarType.Byte ? generated : ImageDataset.ToBytes(generated);
        double distance = FeatureMetrics.FrechetDistance(GaussianStatistics.Fit(_network.Features(pixels)), _reference);
        return new QualityMeasurement(distance, double.NaN, Array.Empty<KeyValuePair<string, double>>());
    }

    /// <summary>True when the candidate's FD is at most the reference's times 1 + <see cref="Tolerance"/> (within 10%).</summary>
    public bool Matches(QualityMeasurement candidate, QualityMeasurement reference) => candidate.Value <= reference.Value * (1 + Tolerance);
}
