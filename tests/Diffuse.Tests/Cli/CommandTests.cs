using static Diffuse.Tests.Cli.Cli;
using Diffuse.Cli;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Cli;

public class CommandTests
{
    private static string TrainTiny(TempDir dir, string data = "moons", params string[] extra)
    {
        string model = Path.Combine(dir.Path, "model");
        var args = new List<string> { "train", "--data", data, "--out", model, "--steps", "30", "--batch", "64", "--width", "16", "--depth", "1", "--timesteps", "50", "--count", "500" };
        args.AddRange(extra);
        var result = Run(args.ToArray());
        Assert.True(result.Code == 0, result.Err);
        return model;
    }

    [Fact]
    public void TrainSampleAndEvalWorkEndToEnd()
    {
        using var dir = new TempDir();
        string model = TrainTiny(dir);
        Assert.True(File.Exists(Path.Combine(model, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(model, "config.json")));
        Assert.True(File.Exists(Path.Combine(model, "loss.png")));

        string csv = Path.Combine(dir.Path, "s.csv");
        var sample = Run("sample", "--model", model, "--count", "25", "--out", csv, "--sampler", "ddim", "--steps", "10");
        Assert.True(sample.Code == 0, sample.Err);
        var table = Diffuse.Data.CsvTable.Load(csv);
        Assert.Equal(25, table.Rows);
        Assert.Equal(new[] { "x", "y" }, table.Columns);

        var karras = Run("sample", "--model", model, "--count", "25", "--out", csv, "--sampler", "dpm++2m", "--sigmas", "karras", "--steps", "10");
        Assert.True(karras.Code == 0, karras.Err);
        Assert.Equal(25, Diffuse.Data.CsvTable.Load(csv).Rows);

        string png = Path.Combine(dir.Path, "s.png");
        Assert.Equal(0, Run("sample", "--model", model, "--count", "25", "--out", png, "--steps", "5").Code);
        Assert.True(new FileInfo(png).Length > 1000);

        var eval = Run("eval", "--model", model, "--data", "moons", "--nll", "--count", "200", "--sampler", "ddim", "--steps", "10");
        Assert.True(eval.Code == 0, eval.Err);
        Assert.Contains("KDE", eval.Out);
        Assert.Contains("nats/dim", eval.Out);

        // Resume extends the run; without --resume an existing model is never overwritten.
        var again = Run("train", "--data", "moons", "--out", model, "--steps", "30", "--count", "500");
        AssertUserError(again, "already holds a model", "--resume");
        var resumed = Run("train", "--data", "moons", "--out", model, "--steps", "40", "--count", "500", "--resume");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains("trained 40 steps", resumed.Out);
    }

    [Fact]
    public void CsvDataTrainsAndEvaluatesOnItsHeldOutRows()
    {
        using var dir = new TempDir();
        string csv = Path.Combine(dir.Path, "table.csv");
        var rng = new Random(3);
        var values = new float[400, 3];
        for (int i = 0; i < 400; i++) { values[i, 0] = (float)rng.NextDouble(); values[i, 1] = 10 + values[i, 0]; values[i, 2] = (float)rng.NextDouble() * 100; }
        Diffuse.Data.CsvTable.Save(csv, new[] { "a", "b", "c" }, values);
        string model = TrainTiny(dir, csv);
        var eval = Run("eval", "--model", model, "--data", csv, "--count", "100", "--steps", "10", "--nll");
        Assert.True(eval.Code == 0, eval.Err);
        Assert.Contains("held-out rows", eval.Out);
    }

    [Fact]
    public void UnknownOptionIsAOneLineError() => AssertUserError(Run("train", "--data", "moons", "--out", "x", "--stepz", "3"), "stepz");

    [Fact]
    public void UnknownCommandIsAOneLineError() => AssertUserError(Run("trian"));

    [Fact]
    public void MissingRequiredOptionsAreNamed()
    {
        AssertUserError(Run("train", "--out", "x"), "--data is required");
        AssertUserError(Run("train", "--data", "moons"), "--out is required");
        AssertUserError(Run("sample", "--out", "x.csv"), "--model is required");
        AssertUserError(Run("eval", "--data", "moons"), "--model is required");
        AssertUserError(Run("eval", "--model", "x"), "model folder 'x' does not exist");
    }

    [Fact]
    public void BadDataIsNamed()
    {
        using var dir = new TempDir();
        AssertUserError(Run("train", "--data", "spirals", "--out", dir.Path), "unknown data 'spirals'", "moons");
        AssertUserError(Run("train", "--data", Path.Combine(dir.Path, "missing.csv"), "--out", dir.Path), "missing.csv", "does not exist");
        string bad = Path.Combine(dir.Path, "bad.csv");
        File.WriteAllText(bad, "a,b\n1,2\n3,NaN\n");
        AssertUserError(Run("train", "--data", bad, "--out", Path.Combine(dir.Path, "m")), "line 3", "column 2", "'b'");
        string empty = Path.Combine(dir.Path, "empty.csv");
        File.WriteAllText(empty, "a,b\n1,2\n\n3,4\n");
        AssertUserError(Run("train", "--data", empty, "--out", Path.Combine(dir.Path, "m")), "line 3");
        string ragged = Path.Combine(dir.Path, "ragged.csv");
        File.WriteAllText(ragged, "a,b\n1,2\n3\n");
        AssertUserError(Run("train", "--data", ragged, "--out", Path.Combine(dir.Path, "m")), "line 3");
    }

    [Fact]
    public void BadOptionValuesListTheChoices()
    {
        AssertUserError(Run("train", "--data", "moons", "--out", "x", "--schedule", "quadratic"), "--schedule", "linear, cosine, sigmoid");
        AssertUserError(Run("train", "--data", "moons", "--out", "x", "--prediction", "score"), "--prediction", "epsilon, x0, v");
        AssertUserError(Run("train", "--data", "moons", "--out", "x", "--steps", "0"), "--steps");
        AssertUserError(Run("train", "--data", "moons", "--out", "x", "--threads", "0"), "--threads");
        AssertUserError(Run("train", "--data", "moons", "--out", "x", "--zero-terminal-snr"), "zero terminal SNR", "v-prediction");
    }

    [Fact]
    public void SampleAndEvalCheckTheirInputs()
    {
        using var dir = new TempDir();
        AssertUserError(Run("sample", "--model", Path.Combine(dir.Path, "none"), "--out", "x.csv"), "does not exist");
        AssertUserError(Run("sample", "--model", dir.Path, "--out", "x.csv"), "no config.json");
        string model = TrainTiny(dir);
        AssertUserError(Run("sample", "--model", model, "--out", "x.txt"), ".csv or .png");
        AssertUserError(Run("sample", "--model", model, "--out", "x.csv", "--sampler", "lms"), "--sampler", "ddpm, ddim, euler, heun");
        AssertUserError(Run("sample", "--model", model, "--out", "x.csv", "--sampler", "ddim", "--sigmas", "karras"), "--sigmas", "--spacing");
        AssertUserError(Run("sample", "--model", model, "--out", "x.csv", "--sampler", "euler", "--sigmas", "3,5"), "decrease");
        AssertUserError(Run("sample", "--model", model, "--out", "x.csv", "--sampler", "dpm++2m", "--s-churn", "10"), "churn", "euler and heun");
        AssertUserError(Run("sample", "--model", model, "--out", "x.csv", "--eta", "-1"), "--eta");
        AssertUserError(Run("eval", "--model", model, "--data", "rings"), "trained on 'moons'");
        string csv = Path.Combine(dir.Path, "three.csv");
        File.WriteAllText(csv, "a,b,c\n1,2,3\n4,5,6\n7,8,9\n");
        AssertUserError(Run("eval", "--model", model, "--data", csv), "2 columns");
    }

    [Fact]
    public void ACorruptModelFolderIsReportedNotThrown()
    {
        using var dir = new TempDir();
        string model = TrainTiny(dir);
        File.WriteAllText(Path.Combine(model, "config.json"), "{ not json");
        AssertUserError(Run("sample", "--model", model, "--out", Path.Combine(dir.Path, "x.csv")), "config.json");
        string other = TrainTiny(new TempDir());
        File.WriteAllBytes(Path.Combine(other, "model.safetensors"), new byte[] { 1, 2, 3 });
        AssertUserError(Run("sample", "--model", other, "--out", Path.Combine(dir.Path, "x.csv")), "model.safetensors");
    }
}

public class NoiseCommandTests
{
    [Fact]
    public void NoiseDrawsTheForwardProcessOfAnIdxFileAsAGridAndAnAnimation()
    {
        using var dir = new TempDir();
        // A tiny IDX3 file: magic 0x00000803, 4 images of 8×8, big-endian sizes.
        string idx = Path.Combine(dir.Path, "train-images-idx3-ubyte");
        var bytes = new List<byte> { 0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 8 };
        for (int i = 0; i < 4 * 64; i++) bytes.Add((byte)(i * 7 % 256));
        File.WriteAllBytes(idx, bytes.ToArray());
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string png = Path.Combine(dir.Path, "f.png");
        Assert.True(Program.Run(new[] { "noise", "--data", idx, "--out", png, "--count", "3", "--columns", "5" }, stdout, stderr) == 0, stderr.ToString());
        using (var bitmap = SkiaSharp.SKBitmap.Decode(png))
        {
            Assert.True(bitmap.Width > 5 * 8 && bitmap.Height > 3 * 8);
        }
        string gif = Path.Combine(dir.Path, "f.gif");
        Assert.True(Program.Run(new[] { "noise", "--data", idx, "--out", gif, "--columns", "4" }, stdout, stderr) == 0, stderr.ToString());
        using var codec = SkiaSharp.SKCodec.Create(gif);
        Assert.Equal(4, codec.FrameCount);
        Assert.NotEqual(0, Program.Run(new[] { "noise", "--data", Path.Combine(dir.Path, "none"), "--out", png }, stdout, new StringWriter()));
    }
}
