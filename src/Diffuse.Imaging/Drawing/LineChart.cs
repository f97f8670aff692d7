using System.Globalization;
using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Draws a line chart: title, axes with labels and ticks (linear or log y), a legend, optional smoothing.</summary>
internal static class LineChart
{
    public const int Width = 800, Height = 500;
    private const int Ts = 2;

    public static SKBitmap Render(
        string title, IReadOnlyList<LineSeries> series, string xLabel, string yLabel, bool logY, int smoothWindow,
        out SKRectI plotArea)
    {
        Validate(title, series, xLabel, yLabel, smoothWindow);
        bool smooth = smoothWindow > 1;

        // The points that can be drawn: finite, and positive on a log axis. Others break the line.
        var curves = new List<Curve>();
        long skipped = 0;
        foreach (LineSeries s in series)
        {
            var drawable = new bool[s.X.Length];
            for (int i = 0; i < s.X.Length; i++)
            {
                drawable[i] = double.IsFinite(s.X[i]) && double.IsFinite(s.Y[i]) && (!logY || s.Y[i] > 0);
                if (!drawable[i]) skipped++;
            }
            // A moving average over most of a short series (say 30 validation points) would mostly show its lag.
            bool isLong = drawable.Count(d => d) >= 2 * smoothWindow;
            curves.Add(new Curve(s, drawable, smooth && isLong ? MovingAverage(s.Y, drawable, smoothWindow) : null));
        }
        bool any = curves.Any(c => c.Drawable.Any(d => d));
        double xMin = double.PositiveInfinity, xMax = double.NegativeInfinity;
        double yMin = double.PositiveInfinity, yMax = double.NegativeInfinity;
        foreach (Curve c in curves)
        {
            for (int i = 0; i < c.Drawable.Length; i++)
            {
                if (!c.Drawable[i]) continue;
                xMin = Math.Min(xMin, c.Series.X[i]);
                xMax = Math.Max(xMax, c.Series.X[i]);
                yMin = Math.Min(yMin, c.Series.Y[i]);
                yMax = Math.Max(yMax, c.Series.Y[i]);
            }
        }
        if (!any)
        {
            (xMin, xMax, yMin, yMax) = (0, 1, logY ? 0.1 : 0, 1);
        }
        (xMin, xMax) = Widen(xMin, xMax);

        int margin = 4 * Ts, tickLength = 2 * Ts, labelGap = 2 * Ts;
        int titleTop = 4 * Ts;
        int top = titleTop + BitmapFont.LineHeight(Ts) + 4 * Ts;
        if (smooth) top += BitmapFont.LineAdvance * Ts;
        // A line under the axis label for a note on skipped values, only when there is one.
        int noteHeight = any && skipped > 0 ? BitmapFont.LineAdvance * Ts : 0;
        int bottom = Height - margin - noteHeight - BitmapFont.LineHeight(Ts) - 3 * Ts - BitmapFont.CapHeight * Ts - labelGap - tickLength;
        int plotHeight = bottom - top;

        Axis yAxis = logY ? LogAxis(yMin, yMax, plotHeight) : LinearYAxis(yMin, yMax, plotHeight);
        int widestY = yAxis.Labels.Select(l => BitmapFont.MeasureWidth(l, Ts)).DefaultIfEmpty(0).Max();
        int left = margin + BitmapFont.LineHeight(Ts) + 4 * Ts + widestY + labelGap + tickLength;
        int right = Width - margin - 10 * Ts;
        var (xTicks, xLabels) = Ticks.Fit(xMin, xMax, right - left, l => BitmapFont.MeasureWidth(l, Ts), 8 * Ts, maxTicks: 10);
        plotArea = new SKRectI(left, top, right, bottom);
        SKRectI area = plotArea;

        float ToX(double x) => area.Left + (float)((x - xMin) / (xMax - xMin) * (area.Width - 1));
        float ToY(double y) => area.Bottom - 1 - (float)((yAxis.Map(y) - yAxis.Min) / (yAxis.Max - yAxis.Min) * (area.Height - 1));

        SKBitmap bitmap = Surface.Create(Width, Height);
        try
        {
            using var canvas = new SKCanvas(bitmap);
            Text.CenteredBold(canvas, Text.Fit(title, Width - 2 * margin, Ts), area.MidX, titleTop, Style.Text, Ts);
            if (smooth)
            {
                Text.Centered(canvas, Text.Fit($"faint: raw values; solid: moving average of {smoothWindow}", Width - 2 * margin, Ts),
                    area.MidX, titleTop + BitmapFont.LineAdvance * Ts, Style.Subtle, Ts);
            }

            using (var grid = Surface.Fill(Style.Grid))
            using (var minor = Surface.Fill(Style.MinorGrid))
            using (var tick = Surface.Fill(Style.Frame))
            {
                foreach (double v in yAxis.Minor) Surface.HLine(canvas, ToY(v), area.Left, area.Right, minor);
                for (int k = 0; k < yAxis.Values.Length; k++)
                {
                    float y = ToY(yAxis.Values[k]);
                    Surface.HLine(canvas, y, area.Left, area.Right, grid);
                    Surface.HLine(canvas, y, area.Left - 1 - tickLength, area.Left - 1, tick);
                    Text.RightAligned(canvas, yAxis.Labels[k], area.Left - 1 - tickLength - labelGap,
                        MathF.Floor(y) - (BitmapFont.CapHeight * Ts - 1) / 2, Style.TickText, Ts);
                }
                for (int k = 0; k < xTicks.Length; k++)
                {
                    float x = ToX(xTicks[k]);
                    Surface.VLine(canvas, x, area.Top, area.Bottom, grid);
                    Surface.VLine(canvas, x, area.Bottom + 1, area.Bottom + 1 + tickLength, tick);
                    Text.Centered(canvas, xLabels[k], MathF.Floor(x) + 0.5f, area.Bottom + 1 + tickLength + labelGap, Style.TickText, Ts);
                }
            }

            canvas.Save();
            canvas.ClipRect(SKRect.Create(area.Left, area.Top, area.Width, area.Height));
            for (int s = 0; s < curves.Count; s++)
            {
                SKColor color = Style.Series[s % Style.Series.Length];
                Curve c = curves[s];
                if (c.Smoothed is null)
                {
                    DrawCurve(canvas, c.Series.X, c.Series.Y, c.Drawable, color, 2f, ToX, ToY);
                }
                else
                {
                    DrawCurve(canvas, c.Series.X, c.Series.Y, c.Drawable, color.WithAlpha(70), 1f, ToX, ToY);
                }
            }
            // Smoothed curves go on top of every raw one, so a faint series never hides another's trend.
            for (int s = 0; s < curves.Count; s++)
            {
                Curve c = curves[s];
                if (c.Smoothed is not null) DrawCurve(canvas, c.Series.X, c.Smoothed, c.Drawable, Style.Series[s % Style.Series.Length], 2f, ToX, ToY);
            }
            canvas.Restore();

            using (var frame = Surface.Fill(Style.Frame)) Surface.Frame(canvas, area, frame);

            Text.Centered(canvas, Text.Fit(xLabel, Width - 2 * margin, Ts), area.MidX, Height - margin - noteHeight - BitmapFont.LineHeight(Ts), Style.Text, Ts);
            if (yLabel.Length > 0)
            {
                canvas.Save();
                float yLabelLeft = margin;
                canvas.RotateDegrees(-90, yLabelLeft, area.MidY);
                // After the rotation, "right" is up the page: centre the text on the plot's middle.
                string fitted = Text.Fit(yLabel, area.Height, Ts);
                BitmapFont.DrawText(canvas, fitted, yLabelLeft - BitmapFont.MeasureWidth(fitted, Ts) / 2, area.MidY, Style.Text, Ts);
                canvas.Restore();
            }

            DrawLegend(canvas, area, series);

            if (!any)
            {
                string note = logY ? "no positive finite values to plot" : "no finite values to plot";
                Text.Centered(canvas, note, area.MidX, area.MidY - BitmapFont.CapHeight * Ts / 2f, Style.Note, Ts);
            }
            else if (skipped > 0)
            {
                string note = $"{skipped.ToString("N0", CultureInfo.InvariantCulture)} {(skipped == 1 ? "value" : "values")} skipped: " +
                              (logY ? "not finite or <= 0 (log scale)" : "not finite");
                Text.Centered(canvas, Text.Fit(note, Width - 2 * margin, Ts), area.MidX, Height - margin - BitmapFont.LineHeight(Ts), Style.Note, Ts);
            }
            return bitmap;
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }
    }

    private static void DrawCurve(
        SKCanvas canvas, double[] xs, double[] ys, bool[] drawable, SKColor color, float width,
        Func<double, float> toX, Func<double, float> toY)
    {
        using var path = new SKPath();
        using var dots = Surface.Fill(color, antialias: true);
        int run = 0;
        float lastX = 0, lastY = 0;
        for (int i = 0; i <= xs.Length; i++)
        {
            bool ok = i < xs.Length && drawable[i];
            if (!ok)
            {
                if (run == 1) canvas.DrawCircle(lastX, lastY, width, dots);
                run = 0;
                continue;
            }
            lastX = toX(xs[i]);
            lastY = toY(ys[i]);
            if (run == 0) path.MoveTo(lastX, lastY);
            else path.LineTo(lastX, lastY);
            run++;
        }
        using var stroke = Surface.Line(color, width, antialias: true);
        stroke.StrokeJoin = SKStrokeJoin.Round;
        stroke.StrokeCap = SKStrokeCap.Round;
        canvas.DrawPath(path, stroke);
    }

    private static void DrawLegend(SKCanvas canvas, SKRectI area, IReadOnlyList<LineSeries> series)
    {
        var entries = series.Select((s, i) => (Name: s.Name ?? "", Color: Style.Series[i % Style.Series.Length]))
            .Where(e => e.Name.Length > 0).ToList();
        if (entries.Count == 0) return;
        int sample = 10 * Ts, pad = 4 * Ts, rowHeight = BitmapFont.LineAdvance * Ts;
        int maxText = area.Width / 2;
        var names = entries.Select(e => Text.Fit(e.Name, maxText, Ts)).ToList();
        int w = pad + sample + 3 * Ts + names.Max(n => BitmapFont.MeasureWidth(n, Ts)) + pad;
        int h = pad + entries.Count * rowHeight - (rowHeight - BitmapFont.CapHeight * Ts) + pad;
        float x = area.Right - w - 4 * Ts, y = area.Top + 4 * Ts;
        using (var back = Surface.Fill(Style.Background.WithAlpha(230))) canvas.DrawRect(x, y, w, h, back);
        using (var border = Surface.Line(Style.Grid)) canvas.DrawRect(x + 0.5f, y + 0.5f, w - 1, h - 1, border);
        for (int i = 0; i < entries.Count; i++)
        {
            float rowTop = y + pad + i * rowHeight;
            using var line = Surface.Fill(entries[i].Color);
            canvas.DrawRect(x + pad, rowTop + (BitmapFont.CapHeight * Ts) / 2 - Ts / 2, sample, Ts, line);
            BitmapFont.DrawText(canvas, names[i], x + pad + sample + 3 * Ts, rowTop, Style.Text, Ts);
        }
    }

    /// <summary>Trailing moving average over the last <paramref name="window"/> drawable values (fewer at the start).</summary>
    internal static double[] MovingAverage(double[] ys, bool[] drawable, int window)
    {
        var result = new double[ys.Length];
        var recent = new Queue<double>();
        double sum = 0;
        for (int i = 0; i < ys.Length; i++)
        {
            if (!drawable[i])
            {
                result[i] = double.NaN;
                continue;
            }
            recent.Enqueue(ys[i]);
            sum += ys[i];
            if (recent.Count > window) sum -= recent.Dequeue();
            // Recomputing now and then keeps rounding errors of the running sum from accumulating.
            if (i % 4096 == 0) sum = recent.Sum();
            result[i] = sum / recent.Count;
        }
        return result;
    }

    private static (double, double) Widen(double min, double max)
    {
        if (max > min) return (min, max);
        double half = Math.Max(Math.Abs(min) * 0.1, 0.5);
        return (min - half, max + half);
    }

    private static Axis LinearYAxis(double min, double max, int lengthPixels)
    {
        (min, max) = Widen(min, max);
        // A little room above and below, so a flat or extreme curve never runs along the frame.
        double pad = 0.04 * (max - min);
        (double lo, double hi) = (min - pad, max + pad);
        int labelHeight = BitmapFont.CapHeight * Ts;
        var (ticks, labels) = Ticks.Fit(lo, hi, lengthPixels, _ => labelHeight, 14 * Ts, maxTicks: 8);
        return new Axis(lo, hi, ticks, labels, [], v => v);
    }

    private static Axis LogAxis(double min, double max, int lengthPixels)
    {
        int lo = (int)Math.Floor(Math.Log10(min) - 0.02), hi = (int)Math.Ceiling(Math.Log10(max) + 0.02);
        if (hi <= lo) hi = lo + 1;
        int decades = hi - lo;
        double pixelsPerDecade = (double)lengthPixels / decades;
        int every = 1;
        while (pixelsPerDecade * every < 14 * Ts + BitmapFont.CapHeight * Ts) every++;
        var values = new List<double>();
        var labels = new List<string>();
        var minor = new List<double>();
        bool labelTwoFive = decades <= 2;
        for (int d = lo; d <= hi; d++)
        {
            if ((d - lo) % every == 0)
            {
                values.Add(Math.Pow(10, d));
                labels.Add(Ticks.LogLabel(1, d));
            }
            if (d == hi || decades > 6) continue;
            for (int m = 2; m <= 9; m++)
            {
                if (labelTwoFive && m is 2 or 5)
                {
                    values.Add(m * Math.Pow(10, d));
                    labels.Add(Ticks.LogLabel(m, d));
                }
                else
                {
                    minor.Add(m * Math.Pow(10, d));
                }
            }
        }
        return new Axis(lo, hi, values.ToArray(), labels.ToArray(), minor.ToArray(), Math.Log10);
    }

    private static void Validate(string title, IReadOnlyList<LineSeries> series, string xLabel, string yLabel, int smoothWindow)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(xLabel);
        ArgumentNullException.ThrowIfNull(yLabel);
        ArgumentOutOfRangeException.ThrowIfNegative(smoothWindow);
        for (int i = 0; i < series.Count; i++)
        {
            LineSeries? s = series[i];
            if (s is null) throw new ArgumentException($"series {i} is null.", nameof(series));
            if (s.X is null || s.Y is null) throw new ArgumentException($"series {i} (\"{s.Name}\") has no X or no Y array.", nameof(series));
            if (s.X.Length != s.Y.Length)
            {
                throw new ArgumentException(
                    $"series {i} (\"{s.Name}\") has {s.X.Length} x values but {s.Y.Length} y values; they must pair up.", nameof(series));
            }
        }
    }

    private sealed record Curve(LineSeries Series, bool[] Drawable, double[]? Smoothed);

    /// <summary>A vertical axis: its range in mapped units (log10 on a log axis), ticks with labels, minor grid lines.</summary>
    private sealed record Axis(double Min, double Max, double[] Values, string[] Labels, double[] Minor, Func<double, double> Map);
}
