using System.Buffers.Binary;
using System.IO.Compression;
using Diffuse.Data.Images;
using SkiaSharp;

namespace Diffuse.Tests.ImageData;

public class PngDecoderTests
{
    /// <summary>A PNG assembled chunk by chunk: IHDR, optional PLTE and tRNS, one IDAT of the given filtered rows, IEND.</summary>
    private static byte[] Png(int width, int height, int depth, int colour, byte[] filteredRows, byte[]? palette = null, byte[]? alpha = null)
    {
        using var output = new MemoryStream();
        output.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        void Chunk(string type, byte[] data)
        {
            var typeAndData = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            var number = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(number, (uint)data.Length);
            output.Write(number);
            output.Write(typeAndData);
            BinaryPrimitives.WriteUInt32BigEndian(number, PngDecoder.Crc(typeAndData));
            output.Write(number);
        }
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = (byte)depth;
        header[9] = (byte)colour;
        Chunk("IHDR", header);
        if (palette is not null) Chunk("PLTE", palette);
        if (alpha is not null) Chunk("tRNS", alpha);
        using (var compressed = new MemoryStream())
        {
            using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(filteredRows);
            Chunk("IDAT", compressed.ToArray());
        }
        Chunk("IEND", []);
        return output.ToArray();
    }

    [Fact]
    public void FourBitPaletteWithTransparencyDecodes()
    {
        // 3×2 pixels, 4 bits each: indices 0 1 2 / 2 1 0, two bytes per row after the filter byte (None, then Up).
        byte[] palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
        // Row 1 unfiltered is 0x21 0x00; the Up filter stores each byte minus the one above: 0x21 − 0x01, 0x00 − 0x20.
        byte[] rows = [0, 0x01, 0x20, 2, 0x20, 0xE0];
        var (w, h, rgba) = PngDecoder.Decode(Png(3, 2, 4, 3, rows, palette, alpha: [0, 200]));
        Assert.Equal((3, 2), (w, h));
        Assert.Equal(new byte[] { 255, 0, 0, 0, 0, 255, 0, 200, 0, 0, 255, 255 }, rgba[..12]);
        Assert.Equal(new byte[] { 0, 0, 255, 255, 0, 255, 0, 200, 255, 0, 0, 0 }, rgba[12..]);
    }

    [Fact]
    public void SkiaEncodedImagesRoundTripWithEveryFilter()
    {
        var random = new Random(5);
        using var bitmap = new SKBitmap(new SKImageInfo(37, 23, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < 23; y++)
            for (int x = 0; x < 37; x++)
                bitmap.SetPixel(x, y, x < 18 ? new SKColor((byte)(x * 7), (byte)(y * 11), (byte)(x + y), (byte)random.Next(256))
                    : new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256), 255));
        foreach (var filters in new[] { SKPngEncoderFilterFlags.AllFilters, SKPngEncoderFilterFlags.Sub, SKPngEncoderFilterFlags.Up,
                     SKPngEncoderFilterFlags.Avg, SKPngEncoderFilterFlags.Paeth, SKPngEncoderFilterFlags.NoFilters })
        {
            using var pixmap = bitmap.PeekPixels();
            using var data = pixmap.Encode(new SKPngEncoderOptions(filters, 6));
            var (w, h, rgba) = PngDecoder.Decode(data!.ToArray());
            Assert.Equal((37, 23), (w, h));
            for (int y = 0; y < 23; y++)
                for (int x = 0; x < 37; x++)
                {
                    var c = bitmap.GetPixel(x, y);
                    int o = (y * 37 + x) * 4;
                    Assert.Equal((c.Red, c.Green, c.Blue, c.Alpha), (rgba[o], rgba[o + 1], rgba[o + 2], rgba[o + 3]));
                }
        }
    }

    [Fact]
    public void GreyAndRgbWithoutAlphaAreOpaque()
    {
        var (_, _, grey) = PngDecoder.Decode(Png(2, 1, 8, 0, [0, 10, 250]));
        Assert.Equal(new byte[] { 10, 10, 10, 255, 250, 250, 250, 255 }, grey);
        var (_, _, rgb) = PngDecoder.Decode(Png(1, 1, 8, 2, [0, 1, 2, 3]));
        Assert.Equal(new byte[] { 1, 2, 3, 255 }, rgb);
        var (_, _, wide) = PngDecoder.Decode(Png(1, 1, 16, 6, [0, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xFF, 0xFF]));
        Assert.Equal(new byte[] { 0x12, 0x56, 0x9A, 0xFF }, wide);
    }

    [Theory]
    [InlineData("signature")]
    [InlineData("crc")]
    [InlineData("truncated")]
    [InlineData("interlaced")]
    [InlineData("short data")]
    public void DamagedFilesAreRefusedWithAReason(string damage)
    {
        byte[] good = Png(2, 2, 8, 2, [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]);
        byte[] bad = damage switch
        {
            "signature" => good.Select((b, i) => i == 1 ? (byte)'X' : b).ToArray(),
            "crc" => good.Select((b, i) => i == 40 ? (byte)(b ^ 1) : b).ToArray(),
            "truncated" => good[..(good.Length - 15)],
            "interlaced" => Png(2, 2, 8, 2, [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6]).Select((b, i) => i == 28 ? (byte)1 : b).ToArray(),
            _ => Png(2, 2, 8, 2, [0, 1, 2, 3]),
        };
        if (damage == "interlaced")
        {
            // Fix the IHDR CRC after setting its interlace byte, so that the interlace check itself is what refuses it.
            BinaryPrimitives.WriteUInt32BigEndian(bad.AsSpan(29), PngDecoder.Crc(bad.AsSpan(12, 17)));
        }
        var e = Assert.Throws<InvalidDataException>(() => PngDecoder.Decode(bad));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        if (damage == "interlaced") Assert.Contains("interlaced", e.Message);
        if (damage == "crc") Assert.Contains("CRC", e.Message);
    }
}
