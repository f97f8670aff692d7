using System.Text.Json;
using Diffuse.Data.Images;
using Diffuse.Tests.Data;
using SkiaSharp;

namespace Diffuse.Tests.ImageData;

/// <summary>
/// The emoji data sets on a fake package laid out like <c>emoji-datasource-twitter</c> (emoji.json and
/// <c>img/twitter/64/*.png</c>), with 8×8 images so that the test stays small; nothing is downloaded.
/// </summary>
public sealed class EmojiDatasetsTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    /// <summary>The Twemoji package with 8×8 images, as the fake packages of these tests hold.</summary>
    internal static readonly EmojiPackage Small = EmojiPackage.Twitter with { Side = 8 };

    private static readonly SKColor[] SkinTones =
        [new(250, 220, 190), new(230, 190, 150), new(200, 150, 110), new(150, 100, 70), new(90, 60, 40)];

    /// <summary>An 8×8 RGBA PNG of one colour (unpremultiplied), encoded by SkiaSharp.</summary>
    internal static byte[] SolidPng(SKColor color, int side = 8)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                bitmap.SetPixel(x, y, color);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>
    /// A fake package folder (holding <c>package/emoji.json</c> and <c>package/img/twitter/64/</c>) of one-colour 8×8
    /// emoji without skin tones; returns the folder.
    /// </summary>
    internal static string WriteSolidPackage(string root, IEnumerable<(string Name, string Category, SKColor Colour)> emoji)
    {
        string images = Path.Combine(root, "package", "img", "twitter", "64");
        Directory.CreateDirectory(images);
        var entries = new List<object>();
        foreach (var (name, category, colour) in emoji)
        {
            string file = $"{entries.Count:x4}.png";
            entries.Add(Entry(name, category, file));
            File.WriteAllBytes(Path.Combine(images, file), SolidPng(colour));
        }
        File.WriteAllText(Path.Combine(root, "package", "emoji.json"), JsonSerializer.Serialize(entries));
        return root;
    }

    private static object Entry(string name, string category, string image, bool drawn = true, Dictionary<string, object>? skins = null) =>
        skins is null
            ? new Dictionary<string, object> { ["name"] = name, ["category"] = category, ["image"] = image, ["has_img_twitter"] = drawn }
            : new Dictionary<string, object> { ["name"] = name, ["category"] = category, ["image"] = image, ["has_img_twitter"] = drawn, ["skin_variations"] = skins };

    /// <summary>
    /// Writes the fake package folder: a red square (Symbols), a half-transparent green (Animals &amp; Nature), a waving
    /// hand with five skin tones (People &amp; Body), 20 more plain emoji per category, a Component swatch and an emoji
    /// the set does not draw. Returns the package root (holding <c>package/</c>).
    /// </summary>
    private string WritePackage(Action<string>? damage = null)
    {
        string root = folder.File("pkg");
        string images = Path.Combine(root, "package", "img", "twitter", "64");
        Directory.CreateDirectory(images);
        var entries = new List<object>
        {
            Entry("RED SQUARE", "Symbols", "red.png"),
            Entry("GREEN GHOST", "Animals & Nature", "green.png"),
            Entry("WAVING HAND SIGN", "People & Body", "wave.png", skins: Enumerable.Range(0, 5).ToDictionary(
                k => $"1F3F{k + 11:X}", k => (object)new Dictionary<string, object> { ["image"] = $"wave-{k}.png", ["has_img_twitter"] = true })),
            Entry("EMOJI MODIFIER FITZPATRICK TYPE-1-2", "Component", "swatch.png"),
            Entry("NOT DRAWN", "Objects", "absent.png", drawn: false),
        };
        File.WriteAllBytes(Path.Combine(images, "red.png"), SolidPng(new SKColor(255, 0, 0)));
        File.WriteAllBytes(Path.Combine(images, "green.png"), SolidPng(new SKColor(0, 255, 0, 128)));
        File.WriteAllBytes(Path.Combine(images, "wave.png"), SolidPng(new SKColor(255, 204, 51)));
        for (int k = 0; k < 5; k++) File.WriteAllBytes(Path.Combine(images, $"wave-{k}.png"), SolidPng(SkinTones[k]));
        File.WriteAllBytes(Path.Combine(images, "swatch.png"), SolidPng(SkinTones[0]));
        for (int c = 0; c < EmojiDatasets.Categories.Count; c++)
            for (int i = 0; i < 20; i++)
            {
                string file = $"e{c}-{i}.png";
                entries.Add(Entry($"EMOJI {c} {i}", EmojiDatasets.Categories[c], file));
                File.WriteAllBytes(Path.Combine(images, file), SolidPng(new SKColor((byte)(20 * c), (byte)(10 * i), 7)));
            }
        File.WriteAllText(Path.Combine(root, "package", "emoji.json"), JsonSerializer.Serialize(entries));
        damage?.Invoke(images);
        return root;
    }

    private string Tarball(string root) => NpmDatasetsTests.WriteTarball(root, folder.File("emoji-datasource-twitter-16.0.0.tgz"));

    private static List<byte[]> Images(ImageDataset data)
    {
        using var contiguous = data.Images.contiguous();
        var bytes = contiguous.data<byte>().ToArray();
        int per = data.Channels * data.Height * data.Width;
        return Enumerable.Range(0, data.Count).Select(i => bytes.AsSpan(i * per, per).ToArray()).ToList();
    }

    /// <summary>An image of [3, s, s] bytes whose channels are the constant <paramref name="rgb"/>.</summary>
    private static bool IsConstant(byte[] image, params byte[] rgb)
    {
        int plane = image.Length / 3;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < plane; p++)
                if (image[c * plane + p] != rgb[c]) return false;
        return true;
    }

    [Fact]
    public void TarballGivesRgbOnWhiteByCategoryWithTheLicence()
    {
        string cache = folder.File("cache");
        var log = new List<string>();
        var report = EmojiDatasets.Convert(Small, Tarball(WritePackage()), 8, EmojiDatasets.CacheFolder("emoji", 8, cache), log.Add, TimeSpan.Zero);
        // 9 × 20 plain + red + green + 6 hands; the swatch and the undrawn emoji are not there.
        Assert.Equal(188, report.TrainImages + report.TestImages);
        Assert.Contains(log, l => l.Contains("1 'Component' images dropped", StringComparison.Ordinal));

        // Later loads read the cache: npm is never run.
        using var train = EmojiDatasets.LoadPackage(Small, DatasetSplit.Train, 8, cache, null, npm: "/nonexistent/npm");
        using var test = EmojiDatasets.LoadPackage(Small, DatasetSplit.Test, 8, cache, null, npm: "/nonexistent/npm");
        Assert.Equal((3, 8, 8), (train.Channels, train.Height, train.Width));
        Assert.Equal(EmojiDatasets.Categories, train.ClassNames);
        Assert.Contains("CC-BY 4.0", train.Licence);
        Assert.Contains("Twitter, Inc. and other contributors", train.Licence);
        Assert.Equal("emoji (train)", train.Source);

        var all = Images(train).Zip(train.Labels!).Concat(Images(test).Zip(test.Labels!)).ToList();
        // Channel order: the red PNG is red in channel 0 only, labelled Symbols.
        var red = Assert.Single(all, e => IsConstant(e.First, 255, 0, 0));
        Assert.Equal(EmojiDatasets.Categories.ToList().IndexOf("Symbols"), red.Second);
        // Alpha 128 over white: round((0·128 + 255·127)/255) = 127 in red and blue, 255 in green.
        var green = Assert.Single(all, e => IsConstant(e.First, 127, 255, 127));
        Assert.Equal(EmojiDatasets.Categories.ToList().IndexOf("Animals & Nature"), green.Second);
        Assert.DoesNotContain(all, e => IsConstant(e.First, SkinTones[0].Red, SkinTones[0].Green, SkinTones[0].Blue) && e.Second != 1);
    }

    [Fact]
    public void SkinToneVariantsStayOnOneSideOfTheSplit()
    {
        string cache = folder.File("cache");
        // An extracted folder rather than a tarball.
        EmojiDatasets.Convert(Small, WritePackage(), 8, EmojiDatasets.CacheFolder("emoji", 8, cache), null, TimeSpan.Zero);
        using var train = EmojiDatasets.LoadPackage(Small, DatasetSplit.Train, 8, cache, null, npm: "/nonexistent/npm");
        using var test = EmojiDatasets.LoadPackage(Small, DatasetSplit.Test, 8, cache, null, npm: "/nonexistent/npm");
        bool Holds(ImageDataset set, SKColor c) => Images(set).Any(i => IsConstant(i, c.Red, c.Green, c.Blue));
        var hands = SkinTones.Append(new SKColor(255, 204, 51)).ToArray();
        int inTest = hands.Count(c => Holds(test, c)), inTrain = hands.Count(c => Holds(train, c));
        Assert.True((inTest, inTrain) is (6, 0) or (0, 6), $"{inTest} hands in test, {inTrain} in train");
        // At least 10% of each category's images are held out (2 of 20 plain emoji; People & Body has 26 images: 3).
        var testCounts = test.CountPerClass();
        var total = train.CountPerClass().Zip(testCounts, (a, b) => a + b).ToArray();
        for (int c = 0; c < total.Length; c++)
            Assert.True(testCounts[c] >= Math.Round(0.1 * total[c], MidpointRounding.AwayFromZero), $"class {c}: {testCounts[c]} of {total[c]}");
    }

    [Fact]
    public void SplitIsDeterministicKeepsGroupsWholeAndHoldsOutAboutTenPercent()
    {
        var random = new Random(7);
        int groups = 400;
        var category = Enumerable.Range(0, groups).Select(_ => random.Next(9)).ToArray();
        var sizes = Enumerable.Range(0, groups).Select(_ => random.Next(10) switch { 0 => 6, 1 => 26, _ => 1 }).ToArray();
        var first = EmojiDatasets.TestGroups(category, sizes, 9);
        Assert.Equal(first, EmojiDatasets.TestGroups(category, sizes, 9));
        for (int c = 0; c < 9; c++)
        {
            var members = Enumerable.Range(0, groups).Where(g => category[g] == c).ToArray();
            int all = members.Sum(g => sizes[g]), held = members.Where(g => first[g]).Sum(g => sizes[g]);
            int target = (int)Math.Round(0.1 * all, MidpointRounding.AwayFromZero);
            // At least the target, and past it by less than the last group taken.
            Assert.InRange(held, target, target + 25);
        }
        Assert.Contains(first, x => x);
        Assert.Contains(first, x => !x);
    }

    [Fact]
    public void ShrinkingAveragesBlocksOnWhite()
    {
        // A 4×4 RGBA image: left half opaque black, right half fully transparent; shrunk to 2×2 and to 1×1.
        var rgba = new byte[4 * 4 * 4];
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                rgba[(y * 4 + x) * 4 + 3] = (byte)(x < 2 ? 255 : 0);
        var two = new byte[3 * 2 * 2];
        EmojiDatasets.OnWhite(rgba, 4, 2, two);
        for (int c = 0; c < 3; c++) Assert.Equal(new byte[] { 0, 255, 0, 255 }, two.AsSpan(c * 4, 4).ToArray());
        var one = new byte[3];
        EmojiDatasets.OnWhite(rgba, 4, 1, one);
        Assert.Equal(new byte[] { 128, 128, 128 }, one); // 127.5 rounds up
    }

    [Fact]
    public void CorruptOrMissingPngsAreNamed()
    {
        string corrupt = WritePackage(images =>
        {
            string path = Path.Combine(images, "wave-3.png");
            var bytes = File.ReadAllBytes(path);
            bytes[bytes.Length / 2] ^= 0x5A;
            File.WriteAllBytes(path, bytes);
        });
        var e = Assert.Throws<DiffuseException>(() => EmojiDatasets.Convert(Small, Tarball(corrupt), 8, folder.File("c1"), null, TimeSpan.Zero));
        Assert.Contains("img/twitter/64/wave-3.png (WAVING HAND SIGN)", e.Message);
        Assert.Contains("not a valid PNG", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        Directory.Delete(corrupt, recursive: true);
        string missing = WritePackage(images => File.Delete(Path.Combine(images, "e4-7.png")));
        e = Assert.Throws<DiffuseException>(() => EmojiDatasets.Convert(Small, missing, 8, folder.File("c2"), null, TimeSpan.Zero));
        Assert.Contains("img/twitter/64/e4-7.png (EMOJI 4 7) is missing", e.Message);
        Assert.False(File.Exists(Path.Combine(folder.File("c2"), NpmDatasets.TrainFile)));
    }

    [Fact]
    public void SizesThatDoNotDivideTheImagesAndUnknownNamesAreRefused()
    {
        var e = Assert.Throws<DiffuseException>(() => EmojiDatasets.CacheFolder("emoji", 24));
        Assert.Contains("must divide 64", e.Message);
        Assert.Throws<DiffuseException>(() => EmojiDatasets.Load("emoji-apple", DatasetSplit.Train));
        Assert.True(EmojiDatasets.IsKnown("Emoji_Google"));
        Assert.Contains("Apache License 2.0", EmojiDatasets.Licence("emoji-google"));
        Assert.EndsWith("emoji-64", EmojiDatasets.CacheFolder("emoji", 64, folder.Path));
    }
}
