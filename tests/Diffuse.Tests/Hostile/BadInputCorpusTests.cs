using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Diffuse.Runtime;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Every bad input of issue 12 and every row of the README's "Errors" table, run through the command line in-process:
/// the exit code, the first line of stderr ("error: …" naming the problem, never a stack trace), and nothing written
/// or destroyed (every file of the case's folder, the model folders included, keeps its bytes, and none appears).
/// </summary>
public class BadInputCorpusTests(HostileModels models) : IClassFixture<HostileModels>
{
    /// <summary>
    /// One bad input: the arguments ({dir} is the case's folder, {table}, {image} and {benched} copies of the tiny
    /// models inside it), what to prepare in the folder, the exit code and a fragment of the first line of stderr.
    /// </summary>
    public sealed record Case(string Name, string[] Args, int Code, string Fragment, Action<string>? Prepare = null)
    {
        public override string ToString() => Name;
    }

    private static void Write(string dir, string file, string text) => File.WriteAllText(Path.Combine(dir, file), text);

    private static void EditConfig(string dir, string model, string patch) =>
        ConfigFileTests.EditConfig(Path.Combine(dir, model), json => ConfigFileTests.Merge(json, JsonNode.Parse(patch)!));

    private static string[] A(params string[] args) => args;

    public static TheoryData<Case> Cases() => new()
    {
        // The README's Errors table, row by row.
        new("unknown option", A("train", "--data", "moons", "--out", "{dir}/m", "--stepz", "5"), 2, "error: Unknown option 'stepz'"),
        new("unknown data", A("train", "--data", "spirals", "--out", "{dir}/m"), 1, "error: unknown data 'spirals'"),
        new("missing file", A("train", "--data", "{dir}/x.csv", "--out", "{dir}/m"), 1, "x.csv' does not exist: check the path"),
        new("bad cell", A("train", "--data", "{dir}/t.csv", "--out", "{dir}/m"), 1, "t.csv: line 3, column 2 ('b'): 'NaN' is not a finite number",
            d => Write(d, "t.csv", "a,b\n1,2\n3,NaN\n")),
        new("ragged row", A("train", "--data", "{dir}/t.csv", "--out", "{dir}/m"), 1, "t.csv: line 3 has 1 field but the header has 2 columns",
            d => Write(d, "t.csv", "a,b\n1,2\n3\n")),
        new("bad choice", A("train", "--data", "moons", "--out", "{dir}/m", "--schedule", "quadratic"), 1, "error: --schedule must be one of linear, cosine, sigmoid (got 'quadratic')."),
        new("existing model", A("train", "--data", "moons", "--out", "{table}"), 1, "already holds a model; pass --resume to continue it"),
        new("other model's data", A("eval", "--model", "{table}", "--data", "rings"), 1, "the model was trained on 'moons', not 'rings'. Give --data moons."),
        new("weights of another shape", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "model.safetensors' does not fit this model",
            d => EditConfig(d, "table", """{"network":{"width":32}}""")),
        new("corrupt weights", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "model.safetensors does not belong to the checkpoint",
            d => File.WriteAllBytes(Path.Combine(d, "table", "model.safetensors"), [16, 0, 0, 0, 0, 0, 0, 0, .. "[not an object]  "u8.ToArray()])),
        new("corrupt weights in a folder without digests", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "model.safetensors' is not a valid safetensors file",
            d =>
            {
                string config = Path.Combine(d, "table", "config.json");
                var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config))!.AsObject();
                json.Remove("files");
                File.WriteAllText(config, json.ToJsonString());
                File.WriteAllBytes(Path.Combine(d, "table", "model.safetensors"), [16, 0, 0, 0, 0, 0, 0, 0, .. "[not an object]  "u8.ToArray()]);
            }),
        new("corrupt sampler.json", A("sample", "--model", "{benched}", "--out", "{dir}/s.csv"), 1, "sampler.json is not a valid sampler record",
            d => Write(d, "benched/sampler.json", "{ not json")),
        new("unknown sampler in sampler.json", A("sample", "--model", "{benched}", "--out", "{dir}/s.csv"), 1, "names an unknown sampler 'lms'",
            d => File.WriteAllText(Path.Combine(d, "benched", "sampler.json"), File.ReadAllText(Path.Combine(d, "benched", "sampler.json")).Replace("\"ddim\"", "\"lms\""))),
        // Issue 12: sizes, config fields, options.
        new("config data.mean shorter than the columns", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "data.mean has 1 values but data.columns has 2",
            d => EditConfig(d, "table", """{"data":{"mean":[0.1]}}""")),
        new("config data.min of the wrong length", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "data.min has 3 values but data.columns has 2",
            d => EditConfig(d, "table", """{"data":{"min":[0,0,0]}}""")),
        new("config data.max of the wrong length", A("eval", "--model", "{table}", "--data", "moons"), 1, "data.max has 1 values but data.columns has 2",
            d => EditConfig(d, "table", """{"data":{"max":[1]}}""")),
        new("config width 10⁹", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "network.width is 1,000,000,000, above the limit of 65,536",
            d => EditConfig(d, "table", """{"network":{"width":1000000000}}""")),
        new("config depth 10⁶", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "network.depth is 1,000,000, above the limit of 1,024",
            d => EditConfig(d, "table", """{"network":{"depth":1000000}}""")),
        new("config 10⁹ timesteps", A("sample", "--model", "{table}", "--out", "{dir}/s.csv"), 1, "schedule.timesteps is 1,000,000,000, above the limit of 100,000",
            d => EditConfig(d, "table", """{"schedule":{"timesteps":1000000000}}""")),
        new("config U-Net of 10¹¹ parameters", A("sample", "--model", "{image}", "--out", "{dir}/grid.png"), 1, "parameters, above the limit of 1,073,741,824",
            d => EditConfig(d, "image", """{"network":{"baseChannels":4096,"blocksPerLevel":64}}""")),
        new("train --width 10⁹", A("train", "--data", "moons", "--out", "{dir}/m", "--width", "1000000000"), 1, "--width is 1,000,000,000, above the limit of 65,536"),
        new("train --batch 10⁷", A("train", "--data", "moons", "--out", "{dir}/m", "--batch", "10000000"), 1, "training with --batch 10000000 needs about"),
        new("sample --count 10⁸ as a scatter plot", A("sample", "--model", "{table}", "--out", "{dir}/s.png", "--count", "100000000"), 1, "too many points for one scatter plot"),
        new("sample --count 10⁸ as a grid", A("sample", "--model", "{image}", "--out", "{dir}/g.png", "--count", "100000000", "--class", "1"), 1, "too many images for one grid"),
        new("--eta above 1", A("sample", "--model", "{table}", "--out", "{dir}/s.csv", "--sampler", "ddim", "--eta", "1.5"), 1, "--eta must lie in [0, 1]"),
        new("--steps 0", A("sample", "--model", "{table}", "--out", "{dir}/s.csv", "--steps", "0"), 1, "--steps must be at least 1 (got 0); leave --steps out"),
        new("--steps 99999999999", A("sample", "--model", "{table}", "--out", "{dir}/s.csv", "--steps", "99999999999"), 2, "--steps must be a whole number from -2,147,483,648 to 2,147,483,647 (got '99999999999')"),
        new("--seed -1", A("sample", "--model", "{table}", "--out", "{dir}/s.csv", "--seed", "-1"), 2, "--seed must be a whole number from 0 to"),
        new("non-UTF-8 CSV header", A("train", "--data", "{dir}/t.csv", "--out", "{dir}/m"), 1, "t.csv: line 1, byte 3 (byte 2 of the file, 0xE9) is not valid UTF-8",
            d => File.WriteAllBytes(Path.Combine(d, "t.csv"), [(byte)'a', (byte)'b', 0xE9, (byte)',', (byte)'c', (byte)'\n', (byte)'1', (byte)',', (byte)'2', (byte)'\n'])),
        new("non-UTF-8 CSV row", A("train", "--data", "{dir}/t.csv", "--out", "{dir}/m"), 1, "t.csv: line 3, byte 1 (byte 8 of the file, 0xFF) is not valid UTF-8",
            d => File.WriteAllBytes(Path.Combine(d, "t.csv"), [.. "a,b\n1,2\n"u8.ToArray(), 0xFF, .. ",3\n"u8.ToArray()])),
        new("dangling link in an image folder, strict", A("train", "--data", "{dir}/imgs", "--out", "{dir}/m", "--size", "4", "--strict"), 1, "is a symbolic link whose target does not exist",
            d =>
            {
                Directory.CreateDirectory(Path.Combine(d, "imgs", "a"));
                File.WriteAllBytes(Path.Combine(d, "imgs", "a", "1.png"), ImageFolderLinkTests.Png(1));
                File.CreateSymbolicLink(Path.Combine(d, "imgs", "a", "2.png"), Path.Combine(d, "nowhere.png"));
            }),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void IsOneClearErrorAndChangesNothing(Case bad)
    {
        using var dir = new TempDir();
        HostileModels.Copy(models.Table, dir.Path, "table");
        HostileModels.Copy(models.Image, dir.Path, "image");
        HostileModels.Copy(models.Benched, dir.Path, "benched");
        bad.Prepare?.Invoke(dir.Path);
        var before = Snapshot(dir.Path);
        string[] args = bad.Args.Select(a => a.Replace("{dir}", dir.Path).Replace("{table}", Path.Combine(dir.Path, "table"))
            .Replace("{image}", Path.Combine(dir.Path, "image")).Replace("{benched}", Path.Combine(dir.Path, "benched"))).ToArray();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, _, err) = Cli.Cli.Run(args);
        string first = err.Split('\n')[0];
        Assert.True(code == bad.Code, $"{bad.Name}: exit {code}, stderr: {err}");
        Assert.StartsWith("error: ", first);
        Assert.Contains(bad.Fragment, first);
        Assert.DoesNotContain("   at ", err);
        Assert.DoesNotContain("Exception", err);
        Assert.Equal(before, Snapshot(dir.Path));
        Assert.True(clock.ElapsedMilliseconds < 10_000, $"{bad.Name}: {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void SamplingABatchThatDoesNotFitInMemoryIsRefusedWithASuggestion()
    {
        using var dir = new TempDir();
        string image = HostileModels.Copy(models.Image, dir.Path, "image");
        var before = Snapshot(dir.Path);
        MemoryBudget.Limit = 1 << 20;
        try
        {
            var (code, _, err) = Cli.Cli.Run("sample", "--model", image, "--out", Path.Combine(dir.Path, "pngs"), "--count", "1000", "--class", "0");
            Assert.Equal(1, code);
            Assert.StartsWith("error: sampling a batch of 256 from this model needs about ", err);
            Assert.Contains("but 1 MB is available; sample on a machine with more memory", err);
        }
        finally
        {
            MemoryBudget.Limit = null;
        }
        Assert.Equal(before, Snapshot(dir.Path));
    }

    /// <summary>Every file below <paramref name="folder"/> (links not followed) with a digest of its bytes.</summary>
    internal static string Snapshot(string folder)
    {
        var lines = new StringBuilder();
        foreach (string file in Directory.EnumerateFileSystemEntries(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                     .Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(file);
            string what = info.LinkTarget is { } target ? "-> " + target
                : Directory.Exists(file) ? "dir"
                : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));
            lines.Append(Path.GetRelativePath(folder, file)).Append(' ').Append(what).Append('\n');
        }
        return lines.ToString();
    }
}
