using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Creates the bitmaps every figure is drawn on, and line-drawing helpers that keep 1-pixel lines crisp.</summary>
internal static class Surface
{
    /// <summary>Largest side, and largest pixel count, of a figure: beyond that a layout mistake is more likely than a wish.</summary>
    public const int MaxSide = 32_000;
    public const long MaxPixels = 120_000_000;

    public static void CheckSize(long width, long height, string what)
    {
        if (width < 1 || height < 1 || width > MaxSide || height > MaxSide || width * height > MaxPixels)
        {
            throw new ArgumentException(
                $"the {what} would be {width}×{height} pixels, outside what can be drawn (at most {MaxSide} a side and " +
                $"{MaxPixels:N0} pixels); use fewer or smaller panels or images.");
        }
    }

    public static SKBitmap Create(int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        if (bitmap.GetPixels() == IntPtr.Zero)
        {
            bitmap.Dispose();
            throw new InvalidOperationException($"could not allocate a {width}×{height} bitmap.");
        }
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(Style.Background);
        return bitmap;
    }

    public static SKPaint Line(SKColor color, float width = 1, bool antialias = false) =>
        new() { Color = color, StrokeWidth = width, IsAntialias = antialias, Style = SKPaintStyle.Stroke };

    public static SKPaint Fill(SKColor color, bool antialias = false) =>
        new() { Color = color, IsAntialias = antialias, Style = SKPaintStyle.Fill };

    /// <summary>A 1-pixel vertical line on the pixel column containing <paramref name="x"/>.</summary>
    public static void VLine(SKCanvas canvas, float x, float top, float bottom, SKPaint paint) =>
        canvas.DrawRect(MathF.Floor(x), top, 1, bottom - top, paint);

    /// <summary>A 1-pixel horizontal line on the pixel row containing <paramref name="y"/>.</summary>
    public static void HLine(SKCanvas canvas, float y, float left, float right, SKPaint paint) =>
        canvas.DrawRect(left, MathF.Floor(y), right - left, 1, paint);

    /// <summary>A 1-pixel frame just outside the rectangle.</summary>
    public static void Frame(SKCanvas canvas, SKRectI rect, SKPaint paint)
    {
        canvas.DrawRect(rect.Left - 1, rect.Top - 1, rect.Width + 2, 1, paint);
        canvas.DrawRect(rect.Left - 1, rect.Bottom, rect.Width + 2, 1, paint);
        canvas.DrawRect(rect.Left - 1, rect.Top, 1, rect.Height, paint);
        canvas.DrawRect(rect.Right, rect.Top, 1, rect.Height, paint);
    }
}
