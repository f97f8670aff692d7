using Diffuse.Imaging;
using Diffuse.Tests.Training;
using SkiaSharp;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Symbolic links in an image folder (real links, made with File/Directory.CreateSymbolicLink): every folder is read
/// once and every file counted once, whatever the links; cycles end; dangling links are skipped with a warning, or are
/// an error in strict mode.
/// </summary>
public sealed class ImageFolderLinkTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    internal static byte[] Png(int seed)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(4, 4, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) bitmap.SetPixel(x, y, new SKColor((byte)(seed * 13 + x), (byte)(y * 40), 90));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>A folder of two classes of 20 images each.</summary>
    private string Classes()
    {
        string root = Path.Combine(_dir.Path, "set");
        foreach (string name in new[] { "cats", "dogs" })
        {
            Directory.CreateDirectory(Path.Combine(root, name));
            for (int i = 0; i < 20; i++) File.WriteAllBytes(Path.Combine(root, name, $"{i:D2}.png"), Png(i));
        }
        return root;
    }

    private static (ImageFolderData Data, List<string> Warnings) Read(string folder, bool strict = false)
    {
        var warnings = new List<string>();
        var data = ImageFolderReader.Load(folder, 4, grayscale: true, strict, warnings.Add);
        return (data, warnings);
    }

    [Fact]
    public void ALinkToItsOwnFolderCountsEveryImageOnce()
    {
        string root = Classes();
        Directory.CreateSymbolicLink(Path.Combine(root, "cats", "self"), ".");
        Directory.CreateSymbolicLink(Path.Combine(root, "dogs", "up"), "..");
        var (data, warnings) = Read(root);
        Assert.Equal(40, data.Count);
        Assert.Equal(new[] { "cats", "dogs" }, data.ClassNames);
        Assert.Equal(40, data.Files.Distinct().Count());
        Assert.Contains(warnings, w => w.Contains("cats/self") && w.Contains("reached through a symbolic link"));
        Assert.Contains(warnings, w => w.Contains("dogs/up"));
    }

    [Fact]
    public void TwoFoldersLinkingToEachOtherEndWithEveryImageOnce()
    {
        string root = Classes();
        Directory.CreateSymbolicLink(Path.Combine(root, "cats", "to-dogs"), Path.Combine(root, "dogs"));
        Directory.CreateSymbolicLink(Path.Combine(root, "dogs", "to-cats"), Path.Combine(root, "cats"));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (data, _) = Read(root);
        Assert.True(clock.ElapsedMilliseconds < 10_000);
        Assert.Equal(40, data.Count);
        // Each class keeps its own images: the other class's folder was visited already (or will be, as its own class).
        Assert.Equal(20, data.Labels!.Count(l => l == 0));
    }

    [Fact]
    public void AFileLinkedTwiceCountsOnceAndADanglingLinkIsSkippedWithAWarningOrRefusedWhenStrict()
    {
        string root = Classes();
        File.CreateSymbolicLink(Path.Combine(root, "cats", "again.png"), Path.Combine(root, "cats", "00.png"));
        File.CreateSymbolicLink(Path.Combine(root, "dogs", "gone.png"), Path.Combine(root, "nowhere.png"));
        Directory.CreateSymbolicLink(Path.Combine(root, "dogs", "lost"), Path.Combine(root, "no-folder"));
        var (data, warnings) = Read(root);
        Assert.Equal(40, data.Count);
        Assert.Contains(warnings, w => w.Contains("again.png") && w.Contains("same file"));
        Assert.Contains(warnings, w => w.Contains("gone.png") && w.Contains("does not exist"));
        Assert.Contains(warnings, w => w.Contains("lost") && w.Contains("does not exist"));
        var strict = Assert.Throws<ImageFolderException>(() => Read(root, strict: true));
        Assert.Contains("does not exist", strict.Message);
    }

    [Fact]
    public void ALinkCycleThroughTheCommandLineTrainsOnTheRealImages()
    {
        string root = Classes();
        Directory.CreateSymbolicLink(Path.Combine(root, "cats", "self"), ".");
        var result = Cli.Cli.Run("train", "--data", root, "--size", "4", "--grayscale", "--out", Path.Combine(_dir.Path, "model"), "--steps", "1", "--batch", "4",
            "--channels", "4", "--channel-mult", "1", "--blocks", "1", "--attention", "none", "--timesteps", "10", "--preview-every", "0");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("40 images of 1×4×4, 2 classes", result.Out);
    }

    [Fact]
    public void RealPathResolvesChainsAndRefusesEndlessOnes()
    {
        string a = Path.Combine(_dir.Path, "a"), b = Path.Combine(_dir.Path, "b");
        Directory.CreateSymbolicLink(a, b);
        Directory.CreateSymbolicLink(b, a);
        Assert.Null(FolderWalk.RealPath(Path.Combine(a, "x")));
        string real = Directory.CreateDirectory(Path.Combine(_dir.Path, "real")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(_dir.Path, "one"), real);
        Directory.CreateSymbolicLink(Path.Combine(_dir.Path, "two"), Path.Combine(_dir.Path, "one"));
        Assert.Equal(FolderWalk.RealPath(real), FolderWalk.RealPath(Path.Combine(_dir.Path, "two")));
    }
}
