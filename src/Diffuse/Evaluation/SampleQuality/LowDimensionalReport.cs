using System.Globalization;
using System.Text;

namespace Diffuse.Evaluation.SampleQuality;

/// <summary>
/// A distance between generated and held-out samples, beside the same distance between real training samples and the
/// held-out samples (the noise floor: what a perfect generator would score with the same number of points).
/// </summary>
/// <param name="Value">The distance between the generated samples and the held-out samples.</param>
/// <param name="NoiseFloor">
/// The mean over the splits of the same distance between equally many real training points (a random subset per
/// split) and the held-out samples.
/// </param>
/// <param name="NoiseFloorStdDev">
/// The sample standard deviation of the metric across the splits (an estimate of its sampling noise for N real
/// points when the splits are disjoint; an underestimate when they overlap, see <see cref="SampleMetrics.Evaluate"/>);
/// <see cref="double.NaN"/> when it cannot be estimated (fewer than two splits, or the training set has exactly as many
/// rows as are used, so every split is the same set).
/// </param>
public sealed record MetricWithFloor(double Value, double NoiseFloor, double NoiseFloorStdDev)
{
    /// <summary>
    /// How far <see cref="Value"/> lies above <see cref="NoiseFloor"/>, in units of <see cref="NoiseFloorStdDev"/>
    /// (NaN when the standard deviation is unknown or zero). Values within about ±2 mean the metric cannot tell the
    /// generated samples from real ones at this sample size.
    /// </summary>
    public double ExcessInStdDevs =>
        double.IsFinite(NoiseFloorStdDev) && NoiseFloorStdDev > 0 ? (Value - NoiseFloor) / NoiseFloorStdDev : double.NaN;
}

/// <summary>
/// Sample-quality metrics of generated low-dimensional samples (2-D toy data, numeric tables) against real data; see
/// <see cref="SampleMetrics.Evaluate"/> for how each number is computed.
/// </summary>
/// <param name="KdeScore">
/// <see cref="KdeGeneratedLogDensity"/> minus <see cref="KdeRealLogDensity"/> (nats per held-out point). 0 means the
/// generated samples explain held-out data as well as equally many real training points; negative is worse.
/// </param>
/// <param name="KdeGeneratedLogDensity">
/// Mean log-density (nats) of the held-out points under a Gaussian KDE fitted to the generated samples.
/// </param>
/// <param name="KdeRealLogDensity">
/// Mean log-density (nats) of the held-out points under a Gaussian KDE fitted to equally many real training points,
/// averaged over the splits.
/// </param>
/// <param name="KdeScoreStdError">
/// Standard error of <see cref="KdeScore"/>: held-out sampling noise from the paired per-held-out-point differences,
/// plus the KDE fit noise estimated across splits (see <see cref="SampleMetrics.Evaluate"/>).
/// </param>
/// <param name="Bandwidth">
/// The kernel standard deviation used by every KDE: the leave-one-out likelihood rule of
/// <see cref="SampleMetrics.KdeBandwidth"/> on the first real training subset.
/// </param>
/// <param name="EnergyDistance">Energy distance between generated and held-out samples, with its noise floor.</param>
/// <param name="SlicedWasserstein">Sliced Wasserstein-2 distance between generated and held-out samples, with its noise floor.</param>
/// <param name="Count">The number N of generated samples (and of real training points per split) that were used.</param>
public sealed record LowDimensionalReport(
    double KdeScore,
    double KdeGeneratedLogDensity,
    double KdeRealLogDensity,
    double KdeScoreStdError,
    double Bandwidth,
    MetricWithFloor EnergyDistance,
    MetricWithFloor SlicedWasserstein,
    int Count)
{
    /// <summary>
    /// A human-readable multi-line table of the report (invariant culture), for logs and the command line.
    /// </summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        string Num(double v) => double.IsNaN(v) ? "n/a" : v.ToString("G4", c);
        string Excess(MetricWithFloor m) => double.IsNaN(m.ExcessInStdDevs) ? "n/a" : m.ExcessInStdDevs.ToString("+0.0;-0.0", c) + " sd";

        var sb = new StringBuilder();
        sb.AppendLine(c, $"Sample quality, N = {Count} generated vs {Count} real points per split");
        sb.AppendLine(c, $"  KDE bandwidth {Num(Bandwidth)} (leave-one-out likelihood on the real reference)");
        sb.AppendLine(c, $"  KDE score (nats/point, 0 = as good as real, < 0 worse): {KdeScore.ToString("0.0000", c)} ± {KdeScoreStdError.ToString("0.0000", c)} (s.e.)");
        sb.AppendLine(c, $"    held-out log-density under generated KDE: {KdeGeneratedLogDensity.ToString("0.0000", c)}");
        sb.AppendLine(c, $"    held-out log-density under real KDE:      {KdeRealLogDensity.ToString("0.0000", c)}");
        sb.AppendLine(c, $"  {"metric",-20} {"value",12} {"noise floor",12} {"floor sd",12} {"excess",10}");
        foreach (var (name, m) in new[] { ("energy distance", EnergyDistance), ("sliced W2", SlicedWasserstein) })
            sb.AppendLine(c, $"  {name,-20} {Num(m.Value),12} {Num(m.NoiseFloor),12} {Num(m.NoiseFloorStdDev),12} {Excess(m),10}");
        return sb.ToString();
    }
}
