using System.Globalization;
using Diffuse.Data.Images;
using Diffuse.Editing;
using Diffuse.Imaging;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Cli;

/// <summary>The frequency view of the forward process for <c>diffuse noise --spectrum</c>.</summary>
public static class SpectrumChart
{
    /// <summary>The timesteps shown (fractions of T), besides the data itself.</summary>
    private static readonly double[] Fractions = { 0.05, 0.2, 0.4, 0.6 };

    /// <summary>
    /// Writes the radially averaged power spectrum of the data and of z_t = √ᾱ·x + √(1 − ᾱ)·ε at several t, each beside the
    /// flat spectrum of its noise √(1 − ᾱ)·ε, and prints where the noise overtakes the signal at each t.
    /// </summary>
    public static void Write(string path, ImageDataset data, NoiseSchedule schedule, int count, ulong seed)
    {
        using var scope = NewDisposeScope();
        int n = Math.Min(count, data.Count);
        var x = ImageDataset.ToModelRange(data.Images.narrow(0, 0, n));
        var eps = SeededNoise.Normal(seed, 0, 0, n, x.shape.AsSpan(1));
        var series = new List<LineSeries>();
        var clean = PowerSpectrum.Radial(x);
        var frequencies = Enumerable.Range(0, clean.Length).Select(f => (double)f).ToArray();
        // The DC bin holds the mean's power; frequencies start at 1 cycle per image.
        LineSeries Series(string name, double[] power) => new(name, frequencies[1..], power[1..]);
        series.Add(Series("data (t = 0)", clean));
        CliContext.Out.WriteLine($"power spectrum of {n} test images ({data.Channels}×{data.Height}×{data.Width}), frequency in cycles per image (1 … {clean.Length - 1}):");
        CliContext.Out.WriteLine($"  data:  {string.Join(" ", clean.Skip(1).Select(p => p.ToString("0.0e0", CultureInfo.InvariantCulture)))}");
        foreach (double fraction in Fractions)
        {
            int t = (int)Math.Round(fraction * schedule.Timesteps);
            double alphaBar = schedule.AlphaBar(t - 1);
            var zt = GaussianProcess.Noise(x, tensor(alphaBar, dtype: ScalarType.Float32), eps);
            var noisy = PowerSpectrum.Radial(zt);
            var noise = PowerSpectrum.Radial(Math.Sqrt(1 - alphaBar) * eps);
            series.Add(Series($"z_t, t = {t}", noisy));
            series.Add(Series($"noise, t = {t}", noise));
            int crossover = Enumerable.Range(1, clean.Length - 1).FirstOrDefault(f => alphaBar * clean[f] < 1 - alphaBar);
            string drowned = crossover == 0 ? "no frequency is drowned yet" : crossover == 1 ? "every frequency is drowned" : $"frequencies from {crossover} cycles per image up are drowned";
            CliContext.Out.WriteLine($"  t = {t,4} (ᾱ = {alphaBar:0.0000}): noise power {1 - alphaBar:0.000} per frequency; {drowned} (ᾱ·P_data(f) < 1 − ᾱ)");
        }
        Figures.SaveLineChart(path, $"Power spectrum of z_t and of its noise ({n} images, {data.Height}×{data.Width})", series, "frequency (cycles per image)", "power", logY: true);
        CliContext.Out.WriteLine($"wrote the spectrum chart to {Path.GetFullPath(path)}");
    }
}
