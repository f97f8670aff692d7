using System.Globalization;

namespace Diffuse.Imaging.Drawing;

/// <summary>Tick positions in 1-2-5 steps (or decades on a log axis) and their compact labels.</summary>
internal static class Ticks
{
    /// <summary>The smallest step of the form {1, 2, 5} × 10^k that is at least <paramref name="raw"/>.</summary>
    public static double NiceStep(double raw)
    {
        if (!(raw > 0) || !double.IsFinite(raw)) return 1;
        double power = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double fraction = raw / power;
        double nice = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10;
        return nice * power;
    }

    /// <summary>The next 1-2-5 step above <paramref name="step"/>.</summary>
    public static double NextStep(double step) => NiceStep(step * 1.5);

    /// <summary>The multiples of <paramref name="step"/> in [min, max] (with a little tolerance at both ends).</summary>
    public static double[] Multiples(double min, double max, double step)
    {
        double eps = step * 1e-6;
        // A range too wide for its step (e.g. from -1e308 to 1e308) gets no ticks rather than an enormous list.
        if (!(step > 0) || !double.IsFinite(min) || !double.IsFinite(max) || !double.IsFinite((max - min) / step) || (max - min) / step > 10_000)
        {
            return [];
        }
        long first = (long)Math.Ceiling((min - eps) / step);
        long last = (long)Math.Floor((max + eps) / step);
        if (last < first) return [];
        var values = new double[last - first + 1];
        for (long i = first; i <= last; i++)
        {
            double v = i * step;
            values[i - first] = Math.Abs(v) < eps ? 0 : v;
        }
        return values;
    }

    /// <summary>
    /// Chooses a 1-2-5 step for the axis [min, max] drawn <paramref name="lengthPixels"/> long: the finest one whose
    /// labels (measured by <paramref name="labelSize"/>, plus <paramref name="gap"/>) do not collide, with at most
    /// <paramref name="maxTicks"/> ticks.
    /// </summary>
    public static (double[] Values, string[] Labels) Fit(
        double min, double max, double lengthPixels, Func<string, int> labelSize, int gap, int maxTicks)
    {
        double span = max - min;
        if (!(span > 0) || !double.IsFinite(span)) return ([], []);
        double step = NiceStep(span / Math.Max(1, maxTicks));
        while (true)
        {
            double[] values = Multiples(min, max, step);
            string[] labels = Format(values, step);
            double spacing = step / span * lengthPixels;
            int widest = labels.Length == 0 ? 0 : labels.Max(labelSize);
            if (values.Length <= 2 || (widest + gap <= spacing && values.Length <= maxTicks)) return (values, labels);
            step = NextStep(step);
        }
    }

    /// <summary>
    /// Labels for the ticks of one axis, all in the same style: plain decimals with as many places as the step needs,
    /// "k"/"M" suffixes for large values, exponents for tiny steps.
    /// </summary>
    public static string[] Format(IReadOnlyList<double> values, double step)
    {
        double largest = values.Count == 0 ? 0 : values.Max(Math.Abs);
        var labels = new string[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            double v = Math.Abs(values[i]) < step * 1e-6 ? 0 : values[i];
            labels[i] = FormatOne(v, step, largest);
        }
        return labels;
    }

    private static string FormatOne(double v, double step, double largest)
    {
        if (v == 0) return "0";
        if (largest >= 1e9 || step < 1e-3) return Exponent(v);
        if (largest >= 1e6) return Decimal(v / 1e6, step / 1e6) + "M";
        if (largest >= 1e4) return Decimal(v / 1e3, step / 1e3) + "k";
        return Decimal(v, step);
    }

    private static string Decimal(double v, double step)
    {
        int places = 0;
        while (places < 9 && Math.Abs(Math.Round(step, places) - step) > Math.Abs(step) * 1e-6) places++;
        return v.ToString("F" + places.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>A compact exponent form: 2.5e-4, 1e6, -3e-5.</summary>
    public static string Exponent(double v)
    {
        if (v == 0) return "0";
        int exponent = (int)Math.Floor(Math.Log10(Math.Abs(v)));
        double mantissa = Math.Round(v / Math.Pow(10, exponent), 2);
        if (Math.Abs(mantissa) >= 10)
        {
            mantissa /= 10;
            exponent++;
        }
        return mantissa.ToString("0.##", CultureInfo.InvariantCulture) + "e" + exponent.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Label of <paramref name="mantissa"/> × 10^<paramref name="decade"/> on a log axis.</summary>
    public static string LogLabel(int mantissa, int decade)
    {
        if (decade < -3 || decade > 4) return mantissa.ToString(CultureInfo.InvariantCulture) + "e" + decade.ToString(CultureInfo.InvariantCulture);
        double value = mantissa * Math.Pow(10, decade);
        return value.ToString("F" + Math.Max(0, -decade).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }
}
