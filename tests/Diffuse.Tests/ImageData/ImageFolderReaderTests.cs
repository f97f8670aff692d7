using Diffuse.Data.Images;
using Diffuse.Imaging;
using Diffuse.Tests.Data;
using SkiaSharp;

namespace Diffuse.Tests.ImageData;

public sealed class ImageFolderReaderTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    private string WriteImage(string relative, int width, int height, Func<int, int, SKColor> color,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        string path = folder.File(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) bitmap.SetPixel(x, y, color(x, y));
        using var data = bitmap.Encode(format, 95);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    private static SKColor Solid(int x, int y) => new(10, 20, 30);

    /// <summary>The RGB value at (x, y) of image i of planar RGB data.</summary>
    private static (int R, int G, int B) At(ImageFolderData data, int i, int x, int y)
    {
        int plane = data.Width * data.Height, offset = i * 3 * plane + y * data.Width + x;
        return (data.Pixels[offset], data.Pixels[offset + plane], data.Pixels[offset + 2 * plane]);
    }

    [Fact]
    public void SubFoldersAreClassesInOrdinalOrderAndRootImagesAreIgnored()
    {
        WriteImage("set/dogs/b.png", 4, 4, Solid);
        WriteImage("set/dogs/a.jpg", 4, 4, Solid, SKEncodedImageFormat.Jpeg);
        WriteImage("set/Cats/nested/z.png", 4, 4, Solid);
        WriteImage("set/Cats/c.PNG", 4, 4, Solid);
        WriteImage("set/stray.png", 4, 4, Solid);
        WriteImage("set/.hidden/h.png", 4, 4, Solid);
        Directory.CreateDirectory(folder.File("set/empty"));
        File.WriteAllText(folder.File("set/dogs/notes.txt"), "not an image");
        var warnings = new List<string>();

        var data = ImageFolderReader.Load(folder.File("set"), 4, grayscale: false, warn: warnings.Add);

        Assert.Equal(["Cats", "dogs"], data.ClassNames);
        Assert.Equal(["Cats/c.PNG", "Cats/nested/z.png", "dogs/a.jpg", "dogs/b.png"], data.Files);
        Assert.Equal([0, 0, 1, 1], data.Labels!);
        Assert.Equal((3, 4, 4), (data.Channels, data.Height, data.Width));
        Assert.Equal(4 * 3 * 16, data.Pixels.Length);
        Assert.Equal((10, 20, 30), At(data, 1, 2, 2));
        Assert.Single(warnings);
        Assert.Contains("ignored 1 image directly in", warnings[0]);

        using var dataset = ImageDataset.FromPixels(data.Pixels, data.Channels, data.Height, data.Width,
            data.Labels!.Select(l => (long)l).ToArray(), data.ClassNames, folder.File("set"));
        Assert.Equal(4, dataset.Count);
        Assert.Equal(30, dataset.Images[3, 2, 1, 1].item<byte>());
    }

    [Fact]
    public void AFolderWithoutClassSubFoldersIsUnlabelled()
    {
        WriteImage("flat/1.png", 3, 3, Solid);
        WriteImage("flat/2.png", 3, 3, Solid);
        var data = ImageFolderReader.Load(folder.File("flat"), 2, grayscale: true);
        Assert.Null(data.Labels);
        Assert.Empty(data.ClassNames);
        Assert.Equal(2, data.Count);
    }

    [Fact]
    public void WideAndTallImagesAreScaledByTheShorterSideAndCentreCropped()
    {
        // Three 20-pixel stripes red | green | blue: the middle square is the green one.
        SKColor Stripe(int i) => i == 0 ? SKColors.Red : i == 1 ? new SKColor(0, 255, 0) : SKColors.Blue;
        WriteImage("c/wide/w.png", 60, 20, (x, y) => Stripe(x / 20));
        WriteImage("c/tall/t.png", 20, 60, (x, y) => Stripe(y / 20));
        var data = ImageFolderReader.Load(folder.File("c"), 10, grayscale: false);
        Assert.Equal(2, data.Count);
        for (int i = 0; i < 2; i++)
            for (int y = 0; y < 10; y++)
                for (int x = 0; x < 10; x++)
                {
                    var (r, g, b) = At(data, i, x, y);
                    Assert.True(r <= 2 && g >= 253 && b <= 2, $"image {data.Files[i]} pixel ({x}, {y}) is ({r}, {g}, {b}), not green");
                }
    }

    [Fact]
    public void ANonSquareTargetCoversAndCropsTheMiddle()
    {
        // 40×40 quadrants red, green / blue, white → 20×10: scaled to 20×20, rows 5…14 kept, so the top half of the
        // result is red | green and the bottom half blue | white.
        SKColor Quadrant(int x, int y) => (x < 20, y < 20) switch
        {
            (true, true) => SKColors.Red,
            (false, true) => new SKColor(0, 255, 0),
            (true, false) => SKColors.Blue,
            _ => SKColors.White,
        };
        WriteImage("q/q.png", 40, 40, Quadrant);
        var data = ImageFolderReader.Load(folder.File("q"), width: 20, height: 10, grayscale: false);
        Assert.Equal((10, 20), (data.Height, data.Width));
        Assert.Equal((255, 0, 0), At(data, 0, 3, 1));
        Assert.Equal((0, 255, 0), At(data, 0, 16, 2));
        Assert.Equal((0, 0, 255), At(data, 0, 2, 8));
        Assert.Equal((255, 255, 255), At(data, 0, 18, 7));
        // The horizontal border lies between rows 4 and 5 of the result.
        Assert.True(At(data, 0, 3, 3).R > 240 && At(data, 0, 3, 6).B > 240);
    }

    [Fact]
    public void AnImageOfTheTargetSizeOrOnlyCroppedIsCopiedExactly()
    {
        static SKColor Noise(int x, int y) => new((byte)(x * 37 + y * 11), (byte)(x * 5 ^ y * 71), (byte)(x * y * 13 + 7));
        WriteImage("e/a/same.png", 8, 8, Noise);
        WriteImage("e/b/wider.png", 12, 8, Noise);
        var data = ImageFolderReader.Load(folder.File("e"), 8, grayscale: false);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
            {
                var c = Noise(x, y);
                Assert.Equal((c.Red, c.Green, c.Blue), ((byte)At(data, 0, x, y).R, (byte)At(data, 0, x, y).G, (byte)At(data, 0, x, y).B));
                var d = Noise(x + 2, y); // 12 → 8 wide: columns 2 … 9 are kept
                Assert.Equal((d.Red, d.Green, d.Blue), ((byte)At(data, 1, x, y).R, (byte)At(data, 1, x, y).G, (byte)At(data, 1, x, y).B));
            }
    }

    [Fact]
    public void EnlargingAUniformImageKeepsItsColourAndTransparencyBecomesBlack()
    {
        WriteImage("u/a/solid.png", 3, 2, (x, y) => new SKColor(90, 140, 200));
        WriteImage("u/b/clear.png", 3, 3, (x, y) => SKColors.Transparent);
        var data = ImageFolderReader.Load(folder.File("u"), 9, grayscale: false);
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 9; x++)
            {
                Assert.Equal((90, 140, 200), At(data, 0, x, y));
                Assert.Equal((0, 0, 0), At(data, 1, x, y));
            }
    }

    [Fact]
    public void GrayscaleIsBt601LumaAndKeepsGreyValues()
    {
        WriteImage("g/colour/c.png", 4, 4, (x, y) => new SKColor(200, 100, 50));
        WriteImage("g/grey/g.png", 4, 4, (x, y) => new SKColor(77, 77, 77));
        var data = ImageFolderReader.Load(folder.File("g"), 4, grayscale: true);
        Assert.Equal(1, data.Channels);
        Assert.Equal(2 * 16, data.Pixels.Length);
        Assert.All(data.Pixels.AsSpan(0, 16).ToArray(), v => Assert.Equal(124, v)); // (299·200 + 587·100 + 114·50)/1000 = 124.2
        Assert.All(data.Pixels.AsSpan(16, 16).ToArray(), v => Assert.Equal(77, v));
    }

    [Fact]
    public void CorruptImagesAreSkippedWithAWarningOrStopAStrictRead()
    {
        WriteImage("k/good/a.png", 4, 4, Solid);
        string truncated = WriteImage("k/good/b.png", 64, 64, (x, y) => new SKColor((byte)(x * 4), (byte)(y * 4), (byte)(x ^ y)));
        File.WriteAllBytes(truncated, File.ReadAllBytes(truncated)[..200]);
        string garbage = folder.File("k/bad/c.png");
        Directory.CreateDirectory(Path.GetDirectoryName(garbage)!);
        File.WriteAllBytes(garbage, "\x89PNG but not really, just some text"u8.ToArray());
        string empty = folder.File("k/bad/d.jpg");
        File.WriteAllBytes(empty, []);
        var warnings = new List<string>();

        var data = ImageFolderReader.Load(folder.File("k"), 4, grayscale: false, warn: warnings.Add);

        Assert.Equal(["good/a.png"], data.Files);
        Assert.Equal(3, data.Skipped);
        Assert.Equal(["bad", "good"], data.ClassNames);
        Assert.Equal([1], data.Labels!);
        Assert.Contains(warnings, w => w.Contains(truncated) && w.Contains("truncated"));
        Assert.Contains(warnings, w => w.Contains(garbage) && w.Contains("not a readable image"));
        Assert.Contains(warnings, w => w.Contains(empty) && w.Contains("empty"));
        Assert.Contains(warnings, w => w.Contains("class 'bad'") && w.Contains("no readable image"));

        var e = Assert.Throws<ImageFolderException>(() => ImageFolderReader.Load(folder.File("k"), 4, grayscale: false, strict: true));
        Assert.Contains(garbage, e.Message);
    }

    [Fact]
    public void MissingOrEmptyFoldersAreErrors()
    {
        var e = Assert.Throws<ImageFolderException>(() => ImageFolderReader.Load(folder.File("nope"), 8, false));
        Assert.Contains("does not exist", e.Message);
        Directory.CreateDirectory(folder.File("none/sub"));
        e = Assert.Throws<ImageFolderException>(() => ImageFolderReader.Load(folder.File("none"), 8, false));
        Assert.Contains("holds no PNG/JPG/JPEG/WEBP/BMP images", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageFolderReader.Load(folder.File("none"), 0, false));
    }
}
