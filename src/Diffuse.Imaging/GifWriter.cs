using System.Runtime.InteropServices;
using Diffuse.Imaging.Gif;
using SkiaSharp;

namespace Diffuse.Imaging;

/// <summary>
/// Writes animated GIF89a files, e.g. the reverse process turning noise into data one frame per step. (SkiaSharp
/// decodes GIF but cannot encode it.)
/// </summary>
/// <remarks>
/// All frames share one global palette of 256 colours: the exact colours when the frames hold no more, otherwise a
/// median-cut palette of 255 (no dithering, so flat plot colours stay flat). Transparent pixels are composited over
/// white. Each frame after the first is stored as the rectangle that holds every pixel that changed since the frame
/// before, with the unchanged pixels inside it marked transparent when the palette has a free entry (disposal "leave
/// in place"), so that long runs of unchanged pixels cost almost nothing; a frame identical to the one before adds its
/// time to it. With a tolerance, a pixel whose palette colour is within it (in every channel) of the colour on screen
/// counts as unchanged: a lossy temporal filter, bounded by the tolerance, that keeps the slowly drifting noise of a
/// reverse process from being stored again in every frame; the last frame is always stored exactly. Pixel data is LZW-compressed as the GIF89a specification
/// prescribes.
/// </remarks>
public static class GifWriter
{
    /// <summary>Writes the frames as an animated GIF, atomically (see <see cref="Figures"/>).</summary>
    /// <param name="path">The GIF file to write (its folder is created when missing).</param>
    /// <param name="frames">The frames, all the same size; not modified or disposed.</param>
    /// <param name="delayCentiseconds">Time each frame is shown, in hundredths of a second (0 to 65535).</param>
    /// <param name="loop">Repeat forever (NETSCAPE2.0 extension); otherwise play once.</param>
    /// <exception cref="ArgumentException">No frames, frames of different sizes, or a delay out of range.</exception>
    public static void Save(string path, IReadOnlyList<SKBitmap> frames, int delayCentiseconds, bool loop = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        byte[] gif = Encode(frames, delayCentiseconds, loop);
        AtomicWrite.Bytes(path, gif);
    }

    /// <summary>Writes the frames as an animated GIF with a time per frame, atomically.</summary>
    /// <param name="path">The GIF file to write (its folder is created when missing).</param>
    /// <param name="frames">The frames, all the same size; not modified or disposed.</param>
    /// <param name="delaysCentiseconds">Time each frame is shown, in hundredths of a second (0 to 65535), one per frame.</param>
    /// <param name="loop">Repeat forever (NETSCAPE2.0 extension); otherwise play once.</param>
    /// <param name="tolerance">
    /// 0 to store every frame exactly; otherwise the largest difference per channel (0–255) between a pixel's colour and
    /// the colour already on screen that leaves the screen as it is (every frame but the last).
    /// </param>
    /// <exception cref="ArgumentException">No frames, frames of different sizes, a delay out of range or missing, or a tolerance outside 0–255.</exception>
    public static void Save(string path, IReadOnlyList<SKBitmap> frames, IReadOnlyList<int> delaysCentiseconds, bool loop = true, int tolerance = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        byte[] gif = Encode(frames, delaysCentiseconds, loop, tolerance);
        AtomicWrite.Bytes(path, gif);
    }

    /// <summary>Encodes the frames as an animated GIF in memory.</summary>
    /// <inheritdoc cref="Save(string, IReadOnlyList{SKBitmap}, int, bool)" path="/param[@name!='path']"/>
    public static byte[] Encode(IReadOnlyList<SKBitmap> frames, int delayCentiseconds, bool loop = true)
    {
        ArgumentNullException.ThrowIfNull(frames);
        return Encode(frames, Enumerable.Repeat(delayCentiseconds, frames.Count).ToArray(), loop);
    }

    /// <summary>Encodes the frames as an animated GIF in memory, with a time per frame.</summary>
    /// <inheritdoc cref="Save(string, IReadOnlyList{SKBitmap}, IReadOnlyList{int}, bool, int)" path="/param[@name!='path']"/>
    public static byte[] Encode(IReadOnlyList<SKBitmap> frames, IReadOnlyList<int> delaysCentiseconds, bool loop = true, int tolerance = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tolerance);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tolerance, 255);
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentNullException.ThrowIfNull(delaysCentiseconds);
        if (frames.Count == 0) throw new ArgumentException("an animation needs at least one frame.", nameof(frames));
        if (delaysCentiseconds.Count != frames.Count)
            throw new ArgumentException($"{delaysCentiseconds.Count} delays were given for {frames.Count} frames.", nameof(delaysCentiseconds));
        foreach (int delay in delaysCentiseconds)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(delay, nameof(delaysCentiseconds));
            ArgumentOutOfRangeException.ThrowIfGreaterThan(delay, ushort.MaxValue, nameof(delaysCentiseconds));
        }
        for (int i = 0; i < frames.Count; i++)
        {
            if (frames[i] is null) throw new ArgumentException($"frame {i} is null.", nameof(frames));
        }
        int width = frames[0].Width, height = frames[0].Height;
        if (width < 1 || height < 1 || width > ushort.MaxValue || height > ushort.MaxValue)
        {
            throw new ArgumentException($"GIF frames must be 1 to 65535 pixels a side, not {width}×{height}.", nameof(frames));
        }
        for (int i = 1; i < frames.Count; i++)
        {
            if (frames[i].Width != width || frames[i].Height != height)
            {
                throw new ArgumentException(
                    $"frame {i} is {frames[i].Width}×{frames[i].Height} but frame 0 is {width}×{height}; all frames must be the same size.",
                    nameof(frames));
            }
        }

        // Frames are converted twice (palette, then pixels) rather than all held in memory at once.
        Palette palette = Palette.Build(frames.Select(ToRgbaOverWhite));
        int? transparent = palette.Used < Palette.Size ? palette.Used : null;

        // The frames as palette indices (what the screen shows after each), identical neighbours merged into one longer frame.
        var indexed = new List<(byte[] Pixels, int Delay)>();
        for (int i = 0; i < frames.Count; i++)
        {
            byte[] pixels = palette.Map(ToRgbaOverWhite(frames[i]));
            if (tolerance > 0 && indexed.Count > 0 && i < frames.Count - 1)
            {
                byte[] shown = indexed[^1].Pixels, colours = palette.Colors;
                for (int p = 0; p < pixels.Length; p++)
                {
                    int a = shown[p] * 3, b = pixels[p] * 3;
                    if (Math.Abs(colours[a] - colours[b]) <= tolerance && Math.Abs(colours[a + 1] - colours[b + 1]) <= tolerance
                        && Math.Abs(colours[a + 2] - colours[b + 2]) <= tolerance)
                        pixels[p] = shown[p];
                }
            }
            if (indexed.Count > 0 && pixels.AsSpan().SequenceEqual(indexed[^1].Pixels))
                indexed[^1] = (indexed[^1].Pixels, Math.Min(ushort.MaxValue, indexed[^1].Delay + delaysCentiseconds[i]));
            else
                indexed.Add((pixels, delaysCentiseconds[i]));
        }

        using var output = new MemoryStream();
        output.Write("GIF89a"u8);
        // Logical screen descriptor: global colour table of 2^(7+1) entries, 8 bits per primary.
        WriteUInt16(output, width);
        WriteUInt16(output, height);
        output.WriteByte(0b1111_0111);
        output.WriteByte(0); // background colour index
        output.WriteByte(0); // pixel aspect ratio: not given
        output.Write(palette.Colors);
        if (loop)
        {
            output.Write([0x21, 0xFF, 0x0B]);
            output.Write("NETSCAPE2.0"u8);
            output.Write([0x03, 0x01, 0x00, 0x00, 0x00]); // sub-block: loop count 0 = forever
        }
        byte[]? previous = null;
        foreach (var (pixels, delay) in indexed)
        {
            var (left, top, w, h) = previous is null ? (0, 0, width, height) : ChangedRectangle(previous, pixels, width, height);
            var rectangle = new byte[w * h];
            bool useTransparency = previous is not null && transparent is not null;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int p = (top + y) * width + left + x;
                    rectangle[y * w + x] = useTransparency && previous![p] == pixels[p] ? (byte)transparent!.Value : pixels[p];
                }
            // Graphic control extension: disposal 1 (leave in place), the transparency flag, the delay, the transparent index.
            output.Write([0x21, 0xF9, 0x04, (byte)(0b0000_0100 | (useTransparency ? 1 : 0))]);
            WriteUInt16(output, delay);
            output.Write([useTransparency ? (byte)transparent!.Value : (byte)0, 0x00]);
            // Image descriptor: the changed rectangle, no local colour table, not interlaced.
            output.WriteByte(0x2C);
            WriteUInt16(output, left);
            WriteUInt16(output, top);
            WriteUInt16(output, w);
            WriteUInt16(output, h);
            output.WriteByte(0);
            LzwEncoder.Write(output, rectangle);
            previous = pixels;
        }
        output.WriteByte(0x3B);
        return output.ToArray();
    }

    /// <summary>The smallest rectangle (left, top, width, height) holding every pixel that differs; never empty.</summary>
    private static (int Left, int Top, int Width, int Height) ChangedRectangle(byte[] before, byte[] after, int width, int height)
    {
        int minX = width, minY = height, maxX = -1, maxY = -1;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (before[y * width + x] != after[y * width + x])
                {
                    minX = Math.Min(minX, x);
                    maxX = Math.Max(maxX, x);
                    minY = Math.Min(minY, y);
                    maxY = Math.Max(maxY, y);
                }
        return maxX < 0 ? (0, 0, 1, 1) : (minX, minY, maxX - minX + 1, maxY - minY + 1);
    }

    private static void WriteUInt16(Stream stream, int value)
    {
        stream.WriteByte((byte)value);
        stream.WriteByte((byte)(value >> 8));
    }

    /// <summary>The frame's pixels as RGBA bytes, drawn over white so that any transparency becomes opaque.</summary>
    private static byte[] ToRgbaOverWhite(SKBitmap frame)
    {
        var info = new SKImageInfo(frame.Width, frame.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var flat = new SKBitmap(info);
        using (var canvas = new SKCanvas(flat))
        {
            canvas.Clear(SKColors.White);
            canvas.DrawBitmap(frame, 0, 0);
        }
        var bytes = new byte[frame.Width * frame.Height * 4];
        IntPtr source = flat.GetPixels();
        int rowLength = frame.Width * 4;
        for (int y = 0; y < frame.Height; y++)
        {
            Marshal.Copy(source + y * flat.RowBytes, bytes, y * rowLength, rowLength);
        }
        return bytes;
    }
}
