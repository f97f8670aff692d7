using Diffuse.Imaging.Drawing;
using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>
/// Figures for a learner, from plain float arrays to PNG files: rows of scatter plots (the data, the forward process at
/// several t, a reverse trajectory, two samplers side by side), line charts (losses), and grids of images.
/// </summary>
/// <remarks>
/// Text uses the embedded <see cref="BitmapFont"/>, so figures look the same on machines without fonts. Non-finite
/// values never throw: they are skipped and the figure says how many. Every file is written atomically (a temporary
/// file in the same folder renamed over the target), so an error never leaves a half-written or destroyed file.
/// Each <c>Save</c> method has a <c>Render</c> twin returning the bitmap, e.g. to build the frames of a
/// <see cref="GifWriter"/> animation; the caller disposes it.
/// </remarks>
public static class Figures
{
    /// <summary>At most this many points are drawn per scatter panel; larger sets are thinned evenly (every k-th point).</summary>
    public const int MaxPointsPerPanel = ScatterFigure.MaxPointsPerPanel;

    /// <summary>Width of a line chart in pixels.</summary>
    public const int LineChartWidth = LineChart.Width;

    /// <summary>Height of a line chart in pixels.</summary>
    public const int LineChartHeight = LineChart.Height;

    /// <summary>
    /// Saves a row (or a grid of <paramref name="columns"/> per row) of titled scatter panels sharing one axis range,
    /// with an optional caption under the whole figure, as a PNG file.
    /// </summary>
    /// <param name="path">The PNG file to write (its folder is created when missing).</param>
    /// <param name="panels">The panels, left to right then top to bottom.</param>
    /// <param name="options">Panel size, axis range, caption and point style; null for the defaults.</param>
    /// <param name="columns">Panels per row; 0 puts them all in one row.</param>
    /// <exception cref="ArgumentException">A panel's X and Y differ in length, or an option is out of range.</exception>
    public static void SaveScatterPanels(string path, IReadOnlyList<ScatterPanel> panels, FigureOptions? options = null, int columns = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using SKBitmap bitmap = RenderScatterPanels(panels, options, columns);
        AtomicWrite.Bytes(path, EncodePng(bitmap));
    }

    /// <summary>Draws what <see cref="SaveScatterPanels"/> saves and returns it; the caller disposes the bitmap.</summary>
    /// <inheritdoc cref="SaveScatterPanels" path="/param[@name!='path']"/>
    public static SKBitmap RenderScatterPanels(IReadOnlyList<ScatterPanel> panels, FigureOptions? options = null, int columns = 0) =>
        ScatterFigure.Render(panels, options ?? new FigureOptions(), columns, out _);

    /// <summary>
    /// Saves a line chart (<see cref="LineChartWidth"/> × <see cref="LineChartHeight"/> pixels) with a title, axes
    /// with tick labels, axis labels and a legend, as a PNG file.
    /// </summary>
    /// <param name="path">The PNG file to write (its folder is created when missing).</param>
    /// <param name="title">Shown above the chart.</param>
    /// <param name="series">The curves, each drawn in its own colour and named in the legend (empty names are left out).</param>
    /// <param name="xLabel">Label under the horizontal axis, e.g. "step".</param>
    /// <param name="yLabel">Label along the vertical axis, e.g. "loss".</param>
    /// <param name="logY">Logarithmic vertical axis with decade ticks; values that are not positive are skipped.</param>
    /// <param name="smoothWindow">
    /// When above 1, each curve is drawn faintly and its trailing moving average over this many points solidly on top
    /// (curves with fewer than twice that many points are drawn as they are).
    /// </param>
    /// <exception cref="ArgumentException">A series' X and Y differ in length, or <paramref name="smoothWindow"/> is negative.</exception>
    public static void SaveLineChart(
        string path, string title, IReadOnlyList<LineSeries> series, string xLabel, string yLabel, bool logY = false, int smoothWindow = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using SKBitmap bitmap = RenderLineChart(title, series, xLabel, yLabel, logY, smoothWindow);
        AtomicWrite.Bytes(path, EncodePng(bitmap));
    }

    /// <summary>Draws what <see cref="SaveLineChart"/> saves and returns it; the caller disposes the bitmap.</summary>
    /// <inheritdoc cref="SaveLineChart" path="/param[@name!='path']"/>
    public static SKBitmap RenderLineChart(
        string title, IReadOnlyList<LineSeries> series, string xLabel, string yLabel, bool logY = false, int smoothWindow = 0) =>
        LineChart.Render(title, series, xLabel, yLabel, logY, smoothWindow, out _);

    /// <summary>Saves a grid of images, e.g. generated samples, as a PNG file.</summary>
    /// <param name="path">The PNG file to write (its folder is created when missing).</param>
    /// <param name="pixels">
    /// Values in [0, 1] laid out as [count, channels, height, width] flattened row-major. Values outside are clamped;
    /// NaN is drawn black.
    /// </param>
    /// <param name="count">Number of images.</param>
    /// <param name="channels">1 for grey, 3 for RGB.</param>
    /// <param name="height">Height of one image in pixels.</param>
    /// <param name="width">Width of one image in pixels.</param>
    /// <param name="columns">Images per row (at least 1).</param>
    /// <param name="padding">White pixels between images and around the grid.</param>
    /// <param name="scale">Each image pixel becomes a scale × scale square (1 to 64).</param>
    /// <param name="rowLabels">Optional labels left of each row; exactly one per row when given.</param>
    /// <exception cref="ArgumentException">The pixel count does not match the shape, or an argument is out of range.</exception>
    public static void SaveImageGrid(
        string path, float[] pixels, int count, int channels, int height, int width, int columns, int padding = 2, int scale = 1,
        IReadOnlyList<string>? rowLabels = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using SKBitmap bitmap = RenderImageGrid(pixels, count, channels, height, width, columns, padding, scale, rowLabels);
        AtomicWrite.Bytes(path, EncodePng(bitmap));
    }

    /// <summary>
    /// Saves a grid of 8-bit images, such as <c>DiffusionModel.SampleImages</c> returns (read its pixels with
    /// <c>images.data&lt;byte&gt;().ToArray()</c>), as a PNG file.
    /// </summary>
    /// <param name="path">The PNG file to write (its folder is created when missing).</param>
    /// <param name="pixels">Bytes laid out as [count, channels, height, width] flattened row-major, 0 black to 255 white.</param>
    /// <param name="count">Number of images.</param>
    /// <param name="channels">1 for grey, 3 for RGB.</param>
    /// <param name="height">Height of one image in pixels.</param>
    /// <param name="width">Width of one image in pixels.</param>
    /// <param name="columns">Images per row (at least 1).</param>
    /// <param name="padding">White pixels between images and around the grid.</param>
    /// <param name="scale">Each image pixel becomes a scale × scale square (1 to 64).</param>
    /// <param name="rowLabels">Optional labels left of each row; exactly one per row when given.</param>
    /// <exception cref="ArgumentException">The pixel count does not match the shape, or an argument is out of range.</exception>
    public static void SaveImageGrid(
        string path, byte[] pixels, int count, int channels, int height, int width, int columns, int padding = 2, int scale = 1,
        IReadOnlyList<string>? rowLabels = null)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        var unit = new float[pixels.Length];
        for (int i = 0; i < pixels.Length; i++) unit[i] = pixels[i] / 255f;
        SaveImageGrid(path, unit, count, channels, height, width, columns, padding, scale, rowLabels);
    }

    /// <summary>Draws what <see cref="SaveImageGrid(string, float[], int, int, int, int, int, int, int, IReadOnlyList{string}?)"/> saves and returns it; the caller disposes the bitmap.</summary>
    /// <inheritdoc cref="SaveImageGrid(string, float[], int, int, int, int, int, int, int, IReadOnlyList{string}?)" path="/param[@name!='path']"/>
    public static SKBitmap RenderImageGrid(
        float[] pixels, int count, int channels, int height, int width, int columns, int padding = 2, int scale = 1,
        IReadOnlyList<string>? rowLabels = null) =>
        ImageGrid.Render(pixels, count, channels, height, width, columns, padding, scale, rowLabels, out _);

    /// <summary>Encodes a bitmap as PNG bytes.</summary>
    /// <exception cref="InvalidOperationException">SkiaSharp could not encode it (e.g. an empty bitmap).</exception>
    public static byte[] EncodePng(SKBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        using SKData? data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        if (data is null) throw new InvalidOperationException($"SkiaSharp could not encode the {bitmap.Width}×{bitmap.Height} bitmap as PNG.");
        return data.ToArray();
    }
}
