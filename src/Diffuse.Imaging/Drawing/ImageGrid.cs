using System.Runtime.InteropServices;
using SkiaSharp;

namespace Diffuse.Imaging.Drawing;

/// <summary>Lays out many small images (e.g. generated digits) in a grid, with optional labels at the left of each row.</summary>
internal static class ImageGrid
{
    public static SKBitmap Render(
        float[] pixels, int count, int channels, int height, int width, int columns, int padding, int scale,
        IReadOnlyList<string>? rowLabels, out SKRectI[] cells)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(padding, 256);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(scale, 64);
        long expected = (long)count * channels * height * width;
        if (pixels.LongLength != expected)
        {
            throw new ArgumentException(
                $"pixels holds {pixels.LongLength} values but [count {count}, channels {channels}, height {height}, width {width}] " +
                $"needs {expected}.", nameof(pixels));
        }
        int cols = Math.Min(columns, count);
        int rows = (count + cols - 1) / cols;
        if (rowLabels is not null && rowLabels.Count != rows)
        {
            throw new ArgumentException($"{rowLabels.Count} row labels given for {rows} rows of images.", nameof(rowLabels));
        }

        long cellWidth = (long)width * scale, cellHeight = (long)height * scale;
        int ts = (int)Math.Clamp(cellHeight / 24, 1, 3);
        int labelWidth = 0;
        if (rowLabels is not null)
        {
            int widest = rowLabels.Select(l => BitmapFont.MeasureWidth(l ?? "", ts)).DefaultIfEmpty(0).Max();
            labelWidth = widest > 0 ? widest + 4 * ts : 0;
        }
        long totalWidth = labelWidth + cols * cellWidth + (cols + 1L) * padding;
        long totalHeight = rows * cellHeight + (rows + 1L) * padding;
        Surface.CheckSize(totalWidth, totalHeight, "image grid");
        int w = (int)totalWidth, h = (int)totalHeight;

        var rgba = new byte[(long)w * h * 4];
        rgba.AsSpan().Fill(255);
        cells = new SKRectI[count];
        int plane = height * width;
        for (int k = 0; k < count; k++)
        {
            int left = labelWidth + padding + k % cols * (int)(cellWidth + padding);
            int top = padding + k / cols * (int)(cellHeight + padding);
            cells[k] = SKRectI.Create(left, top, (int)cellWidth, (int)cellHeight);
            int imageStart = k * channels * plane;
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    int p = imageStart + y * width + x;
                    byte r = ToByte(pixels[p]);
                    byte g = channels == 3 ? ToByte(pixels[p + plane]) : r;
                    byte b = channels == 3 ? ToByte(pixels[p + 2 * plane]) : r;
                    for (int dy = 0; dy < scale; dy++)
                    {
                        long row = (long)(top + y * scale + dy) * w;
                        for (int dx = 0; dx < scale; dx++)
                        {
                            long o = (row + left + x * scale + dx) * 4;
                            rgba[o] = r;
                            rgba[o + 1] = g;
                            rgba[o + 2] = b;
                        }
                    }
                }
            }
        }

        SKBitmap bitmap = Surface.Create(w, h);
        try
        {
            IntPtr destination = bitmap.GetPixels();
            for (int y = 0; y < h; y++)
            {
                Marshal.Copy(rgba, y * w * 4, destination + y * bitmap.RowBytes, w * 4);
            }
            bitmap.NotifyPixelsChanged();
            if (rowLabels is not null && labelWidth > 0)
            {
                using var canvas = new SKCanvas(bitmap);
                for (int r = 0; r < rows; r++)
                {
                    int top = padding + r * (int)(cellHeight + padding);
                    float textTop = top + (cellHeight - BitmapFont.CapHeight * ts) / 2;
                    Text.RightAligned(canvas, Text.Fit(rowLabels[r] ?? "", labelWidth - 2 * ts, ts), labelWidth - ts, textTop, Style.Text, ts);
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

    /// <summary>[0, 1] to 0..255; values outside are clamped and NaN is drawn black.</summary>
    private static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)MathF.Round(Math.Clamp(v, 0f, 1f) * 255f);
}
