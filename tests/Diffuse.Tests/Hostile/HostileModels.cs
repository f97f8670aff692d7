using Diffuse.Tests.Cli;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Tiny trained model folders shared by the hostile-input tests (a 2-column table model and an 8×8 image model), and
/// copies of them that a test may damage. They are trained once per test run, whichever class asks first, and removed
/// when the process ends; tests never change them, only their copies.
/// </summary>
public sealed class HostileModels
{
    private static readonly Lazy<HostileModels> Shared = new(() => new HostileModels(0));

    private readonly TempDir _dir;

    /// <summary>The shared models (as a class fixture).</summary>
    public HostileModels()
    {
        var shared = Shared.Value;
        _dir = shared._dir;
        (Table, Image, Benched) = (shared.Table, shared.Image, shared.Benched);
    }

    private HostileModels(int _)
    {
        _dir = new TempDir();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _dir.Dispose();
        Table = Path.Combine(_dir.Path, "table");
        var table = Cli.Cli.Run("train", "--data", "moons", "--out", Table, "--steps", "5", "--batch", "32", "--width", "16", "--depth", "1",
            "--timesteps", "20", "--count", "200");
        Assert.True(table.Code == 0, table.Err);
        string idx = Directory.CreateDirectory(Path.Combine(_dir.Path, "idx")).FullName;
        ImageCommandTests.WriteIdxFolder(idx, trainCount: 16, testCount: 8);
        Image = Path.Combine(_dir.Path, "image");
        var image = Cli.Cli.Run("train", "--data", idx, "--out", Image, "--steps", "2", "--batch", "8", "--channels", "8", "--channel-mult", "1",
            "--blocks", "1", "--attention", "none", "--timesteps", "20", "--dropout", "0", "--preview-every", "0");
        Assert.True(image.Code == 0, image.Err);
        Benched = Copy(Table, _dir.Path);
        var bench = Cli.Cli.Run("bench-samplers", "--model", Benched, "--budgets", "2", "--samplers", "ddim", "--spacings", "trailing", "--count", "50");
        Assert.True(bench.Code == 0, bench.Err);
    }

    /// <summary>A copy of <see cref="Table"/> with the sampler.json of a tiny bench-samplers run.</summary>
    public string Benched { get; }

    /// <summary>A model folder trained on moons (MLP, width 16, depth 1, T = 20).</summary>
    public string Table { get; }

    /// <summary>A class-conditional 1×8×8 image model (U-Net, 8 base channels, one level, T = 20).</summary>
    public string Image { get; }

    /// <summary>A copy of <paramref name="model"/> in <paramref name="into"/>, to damage.</summary>
    public static string Copy(string model, string into, string? name = null)
    {
        string copy = Path.Combine(into, name ?? Path.GetFileName(model) + "-copy");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(model))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        return copy;
    }

}
