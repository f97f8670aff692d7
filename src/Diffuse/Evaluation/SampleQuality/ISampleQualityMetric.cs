using static TorchSharp.torch;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>One measurement of a <see cref="ISampleQualityMetric"/>.</summary>
/// <param name="Value">The metric's value.</param>
/// <param name="StdError">Its standard error (NaN when the metric cannot estimate it).</param>
/// <param name="Details">Further numbers the metric computed on the way, by name (e.g. energy distance), for reports.</param>
public sealed record QualityMeasurement(double Value, double StdError, IReadOnlyList<KeyValuePair<string, double>> Details);

/// <summary>
/// A sample-quality metric that ranks sampler settings in <see cref="Benchmarking.SamplerBenchmark"/>: it measures a set of
/// generated samples against fixed real data chosen when the metric is made. <see cref="KdeScoreMetric"/> is the metric
/// of tabular and 2-D models (higher is better); <see cref="FrechetDistanceMetric"/> that of image models, the Fréchet
/// distance on the features of a fixed network (lower is better, <see cref="Matches"/> within 10% of the reference).
/// </summary>
public interface ISampleQualityMetric
{
    /// <summary>Short name for tables and plots, e.g. "KDE score".</summary>
    string Name { get; }

    /// <summary>Unit of <see cref="QualityMeasurement.Value"/>, e.g. "nats/point".</summary>
    string Unit { get; }

    /// <summary>Whether larger values are better (the KDE score) or smaller (a distance).</summary>
    bool HigherIsBetter { get; }

    /// <summary>
    /// Measures generated samples [N, ...] in the data's original units; the same samples always give the same result.
    /// The caller keeps ownership of <paramref name="generated"/>.
    /// </summary>
    QualityMeasurement Measure(Tensor generated);

    /// <summary>
    /// Whether <paramref name="candidate"/> is as good as <paramref name="reference"/> for practical purposes: better, or
    /// worse by no more than the metric's documented tolerance.
    /// </summary>
    bool Matches(QualityMeasurement candidate, QualityMeasurement reference);
}

/// <summary>
/// The KDE score of <see cref="SampleMetrics.Evaluate"/> as an <see cref="ISampleQualityMetric"/> (higher is better, 0 =
/// as good as real data), for tabular and 2-D models; its details are the energy distance and the sliced Wasserstein-2
/// distance to the held-out set. Uses the same real data, seed and splits as <c>diffuse eval</c>, so a measurement
/// equals what <c>diffuse eval</c> prints for the same sampler, count and seed.
/// </summary>
/// <param name="train">Real training points [R, D] in original units (kept by the caller, not disposed here).</param>
/// <param name="heldOut">Real held-out points [H, D] in original units (kept by the caller).</param>
/// <param name="seed">Seed of the metric's random choices (training subsets, projection directions).</param>
/// <param name="splits">Training subsets of the real side (see <see cref="SampleMetrics.Evaluate"/>).</param>
public sealed class KdeScoreMetric(Tensor train, Tensor heldOut, long seed = 0, int splits = 5) : ISampleQualityMetric
{
    /// <summary>A setting matches the reference when its KDE score is at most this much lower (nats/point): the target.</summary>
    public const double Tolerance = 0.01;

    /// <inheritdoc />
    public string Name => "KDE score";

    /// <inheritdoc />
    public string Unit => "nats/point";

    /// <inheritdoc />
    public bool HigherIsBetter => true;

    /// <inheritdoc />
    public QualityMeasurement Measure(Tensor generated)
    {
        var report = SampleMetrics.Evaluate(generated, train, heldOut, splits, seed);
        return new QualityMeasurement(report.KdeScore, report.KdeScoreStdError, new KeyValuePair<string, double>[]
        {
            new("energy_distance", report.EnergyDistance.Value),
            new("sliced_w2", report.SlicedWasserstein.Value),
        });
    }

    /// <summary>True when the candidate's score is at least the reference's minus <see cref="Tolerance"/> (0.01 nats).</summary>
    public bool Matches(QualityMeasurement candidate, QualityMeasurement reference) => candidate.Value >= reference.Value - Tolerance;
}
