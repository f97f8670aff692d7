using System.Globalization;
using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Draws a grid of square scatter panels with titles, ticks and an optional caption.</summary>
internal static class ScatterFigure
{
    /// <summary>At most this many points are drawn per panel; larger sets are thinned evenly and deterministically.</summary>
    public const int MaxPointsPerPanel = 20_000;

    public const int MaxPanels = 400;

    public static SKBitmap Render(IReadOnlyList<ScatterPanel> panels, FigureOptions options, int columns, out SKRectI[] plotAreas)
    {
        Validate(panels, options, columns);
        int count = panels.Count;
        int cols = columns == 0 ? count : Math.Min(columns, count);
        int rows = (count + cols - 1) / cols;
        int size = options.PanelSize;
        int ts = size < 180 ? 1 : size < 640 ? 2 : 3;

        PanelStats[] stats = panels.Select(p => PanelStats.Of(p, options.AxisLimit)).ToArray();
        double[] limits = new double[count];
        double sharedLimit = options.AxisLimit ?? FitLimit(stats.Max(s => s.MaxAbs));
        for (int i = 0; i < count; i++)
        {
            limits[i] = options.AxisLimit is null && !options.SharedAxes ? FitLimit(stats[i].MaxAbs) : sharedLimit;
        }

        int tickLength = 2 * ts, labelGap = 2 * ts;
        var ticks = new (double[] Values, string[] Labels)[count];
        for (int i = 0; i < count; i++)
        {
            ticks[i] = Ticks.Fit(-limits[i], limits[i], size, l => BitmapFont.MeasureWidth(l, ts), 5 * ts, maxTicks: 9);
        }
        int widestLabel = ticks.SelectMany(t => t.Labels).Select(l => BitmapFont.MeasureWidth(l, ts)).DefaultIfEmpty(0).Max();

        int left = widestLabel + tickLength + labelGap + 2 * ts;
        int right = widestLabel / 2 + 8 * ts;
        int titleHeight = 3 * ts + BitmapFont.LineHeight(ts) + 2 * ts;
        int bottom = tickLength + labelGap + BitmapFont.CapHeight * ts + 4 * ts;
        int cellWidth = left + size + right, cellHeight = titleHeight + size + bottom;
        int margin = 3 * ts;

        long width = 2L * margin + (long)cols * cellWidth;
        string caption = options.Caption is { Length: > 0 } c ? Text.Wrap(c, (int)Math.Min(width, Surface.MaxSide) - 2 * margin, ts) : "";
        int captionHeight = caption.Length > 0 ? BitmapFont.MeasureHeight(caption, ts) + 6 * ts : 0;
        long height = 2L * margin + (long)rows * cellHeight + captionHeight;
        Surface.CheckSize(width, height, "figure");

        SKBitmap bitmap = Surface.Create((int)width, (int)height);
        try
        {
            using var canvas = new SKCanvas(bitmap);
            plotAreas = new SKRectI[count];
            for (int i = 0; i < count; i++)
            {
                int cellX = margin + i % cols * cellWidth, cellY = margin + i / cols * cellHeight;
                var area = SKRectI.Create(cellX + left, cellY + titleHeight, size, size);
                plotAreas[i] = area;
                // Centred over the plot, but kept inside the panel's cell when it is wider than the plot.
                string title = Text.Fit(panels[i].Title ?? "", cellWidth - 2 * ts, ts);
                int titleWidth = BitmapFont.MeasureWidth(title, ts);
                float titleLeft = Math.Clamp(area.MidX - titleWidth / 2f, cellX + ts, cellX + cellWidth - ts - titleWidth);
                BitmapFont.DrawText(canvas, title, MathF.Round(titleLeft), cellY + 3 * ts, Style.Text, ts);
                if (ts > 1) BitmapFont.DrawText(canvas, title, MathF.Round(titleLeft) + 1, cellY + 3 * ts, Style.Text, ts);
                DrawPanel(canvas, area, panels[i], stats[i], limits[i], ticks[i], options, ts);
            }
            if (caption.Length > 0)
            {
                int top = (int)height - margin - captionHeight + 5 * ts;
                foreach (string line in caption.Split('\n'))
                {
                    Text.Centered(canvas, line, width / 2f, top, Style.Text, ts);
                    top += BitmapFont.LineAdvance * ts;
                }
            }
            return bitmap;
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }
    }

    private static void DrawPanel(
        SKCanvas canvas, SKRectI area, ScatterPanel panel, PanelStats stats, double limit,
        (double[] Values, string[] Labels) ticks, FigureOptions options, int ts)
    {
        float scale = (float)(area.Width / (2 * limit));
        float ToX(double x) => area.Left + (float)((x + limit) * scale);
        float ToY(double y) => area.Bottom - (float)((y + limit) * scale);

        using (var grid = Surface.Fill(Style.Grid))
        using (var zero = Surface.Fill(Style.ZeroLine))
        using (var tick = Surface.Fill(Style.Frame))
        {
            int tickLength = 2 * ts, labelGap = 2 * ts;
            for (int k = 0; k < ticks.Values.Length; k++)
            {
                double v = ticks.Values[k];
                float x = Math.Min(ToX(v), area.Right - 1), y = Math.Min(ToY(v), area.Bottom - 1);
                SKPaint paint = v == 0 ? zero : grid;
                Surface.VLine(canvas, x, area.Top, area.Bottom, paint);
                Surface.HLine(canvas, y, area.Left, area.Right, paint);
                Surface.VLine(canvas, x, area.Bottom + 1, area.Bottom + 1 + tickLength, tick);
                Surface.HLine(canvas, y, area.Left - 1 - tickLength, area.Left - 1, tick);
                Text.Centered(canvas, ticks.Labels[k], MathF.Floor(x) + 0.5f, area.Bottom + 1 + tickLength + labelGap, Style.TickText, ts);
                Text.RightAligned(canvas, ticks.Labels[k], area.Left - 1 - tickLength - labelGap,
                    MathF.Floor(y) - (BitmapFont.CapHeight * ts - 1) / 2, Style.TickText, ts);
            }
        }

        if (stats.Finite > 0)
        {
            byte alpha = (byte)Math.Clamp(MathF.Round(options.PointAlpha * 255), 1, 255);
            using var dot = Surface.Fill(Style.Point.WithAlpha(alpha), antialias: true);
            canvas.Save();
            canvas.ClipRect(SKRect.Create(area.Left, area.Top, area.Width, area.Height));
            int n = panel.X.Length;
            int drawn = Math.Min(n, MaxPointsPerPanel);
            for (int j = 0; j < drawn; j++)
            {
                int i = n <= MaxPointsPerPanel ? j : (int)((long)j * n / MaxPointsPerPanel);
                float x = panel.X[i], y = panel.Y[i];
                if (!float.IsFinite(x) || !float.IsFinite(y)) continue;
                canvas.DrawCircle(ToX(x), ToY(y), options.PointRadius, dot);
            }
            canvas.Restore();
        }

        using (var frame = Surface.Fill(Style.Frame)) Surface.Frame(canvas, area, frame);

        var notes = new List<string>();
        if (panel.X.Length == 0) notes.Add("no points");
        else if (stats.Finite == 0) notes.Add("no finite points");
        if (stats.NonFinite > 0 && stats.Finite > 0) notes.Add($"{Count(stats.NonFinite)} not finite, skipped");
        if (stats.Outside > 0) notes.Add($"{Count(stats.Outside)} outside the axes");
        if (panel.X.Length > MaxPointsPerPanel) notes.Add($"{Count(MaxPointsPerPanel)} of {Count(panel.X.Length)} shown");
        DrawNotes(canvas, area, notes, centred: stats.Finite == 0, ts);
    }

    private static void DrawNotes(SKCanvas canvas, SKRectI area, List<string> notes, bool centred, int ts)
    {
        if (notes.Count == 0) return;
        // The panel's text size when the notes fit, else the smallest.
        int noteScale = notes.All(n => BitmapFont.MeasureWidth(n, ts) <= area.Width - 6 * ts) ? ts : 1;
        string text = string.Join('\n', notes.Select(n => Text.Fit(n, area.Width - 6 * noteScale, noteScale)));
        int w = BitmapFont.MeasureWidth(text, noteScale), h = BitmapFont.MeasureHeight(text, noteScale);
        float x = centred ? area.MidX - w / 2f : area.Left + 3 * noteScale;
        float y = centred ? area.MidY - h / 2f : area.Top + 3 * noteScale;
        x = MathF.Round(x);
        y = MathF.Round(y);
        using (var backing = Surface.Fill(Style.Background.WithAlpha(215)))
        {
            canvas.DrawRect(x - 2 * noteScale, y - 2 * noteScale, w + 4 * noteScale, h + 3 * noteScale, backing);
        }
        BitmapFont.DrawText(canvas, text, x, y, Style.Note, noteScale);
    }

    private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>A symmetric limit a little beyond <paramref name="maxAbs"/>, rounded up to a multiple of a nice step.</summary>
    internal static double FitLimit(double maxAbs)
    {
        double raw = maxAbs > 0 && double.IsFinite(maxAbs) ? maxAbs * 1.05 : 1;
        double step = Ticks.NiceStep(raw / 8);
        return Math.Ceiling(raw / step - 1e-9) * step;
    }

    private static void Validate(IReadOnlyList<ScatterPanel> panels, FigureOptions options, int columns)
    {
        ArgumentNullException.ThrowIfNull(panels);
        ArgumentNullException.ThrowIfNull(options);
        if (panels.Count == 0) throw new ArgumentException("a figure needs at least one panel.", nameof(panels));
        if (panels.Count > MaxPanels) throw new ArgumentException($"a figure holds at most {MaxPanels} panels, not {panels.Count}.", nameof(panels));
        if (columns < 0) throw new ArgumentOutOfRangeException(nameof(columns), columns, "columns must be 0 (one row) or positive.");
        for (int i = 0; i < panels.Count; i++)
        {
            ScatterPanel? panel = panels[i];
            if (panel is null) throw new ArgumentException($"panel {i} is null.", nameof(panels));
            if (panel.X is null || panel.Y is null) throw new ArgumentException($"panel {i} (\"{panel.Title}\") has no X or no Y array.", nameof(panels));
            if (panel.X.Length != panel.Y.Length)
            {
                throw new ArgumentException(
                    $"panel {i} (\"{panel.Title}\") has {panel.X.Length} x values but {panel.Y.Length} y values; they must pair up.",
                    nameof(panels));
            }
        }
        if (options.PanelSize is < 64 or > 2048)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.PanelSize, "PanelSize must be between 64 and 2048 pixels.");
        }
        if (options.AxisLimit is { } limit && !(float.IsFinite(limit) && limit > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(options), limit, "AxisLimit must be a positive finite number, or null to fit the data.");
        }
        if (!(options.PointAlpha > 0 && options.PointAlpha <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.PointAlpha, "PointAlpha must be in (0, 1].");
        }
        if (!(options.PointRadius >= 0.3f && options.PointRadius <= 20))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.PointRadius, "PointRadius must be between 0.3 and 20 pixels.");
        }
    }

    /// <summary>What a panel holds: finite and non-finite counts, the largest |coordinate|, points beyond a fixed limit.</summary>
    private readonly record struct PanelStats(int Finite, int NonFinite, double MaxAbs, int Outside)
    {
        public static PanelStats Of(ScatterPanel panel, float? limit)
        {
            int finite = 0, nonFinite = 0, outside = 0;
            double maxAbs = 0;
            for (int i = 0; i < panel.X.Length; i++)
            {
                float x = panel.X[i], y = panel.Y[i];
                if (!float.IsFinite(x) || !float.IsFinite(y))
                {
                    nonFinite++;
                    continue;
                }
                finite++;
                double m = Math.Max(Math.Abs(x), Math.Abs(y));
                if (m > maxAbs) maxAbs = m;
                if (limit is { } l && m > l) outside++;
            }
            return new PanelStats(finite, nonFinite, maxAbs, outside);
        }
    }
}
