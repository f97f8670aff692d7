using System.Diagnostics;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Imaging;
using Diffuse.Tests.ImageData;
using Diffuse.Tests.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Diffuse.Tests.Hostile;

/// <summary>
/// Fuzzing of the readers: thousands of seeded mutations of small valid files each. Every case must end in a successful
/// read or the reader's user error (<see cref="DiffuseException"/>; <see cref="ImageFolderException"/> for the imaging
/// package, which the command line turns into one), within a time limit, with the process's working set bounded.
/// </summary>
public class ReaderFuzzTests(HostileModels models, ITestOutputHelper output) : IClassFixture<HostileModels>
{
    /// <summary>The longest one case may take (a hang fails the test instead of stopping the suite).</summary>
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How far the working set may grow over its value at the start of a reader's run.</summary>
    private const long MemoryGrowthBound = 512L << 20;

    /// <summary>
    /// Runs <paramref name="cases"/> mutations of <paramref name="valid"/> through <paramref name="read"/> (which gets
    /// the mutated bytes, written where the reader expects them), and checks every outcome.
    /// </summary>
    private void Fuzz(string reader, byte[] valid, int cases, Action<byte[]> read, bool text = false, Type? userError = null)
    {
        userError ??= typeof(DiffuseException);
        var clock = Stopwatch.StartNew();
        long startMemory = Environment.WorkingSet, peak = startMemory;
        int succeeded = 0, refused = 0;
        read(valid); // the unmutated file reads
        for (int i = 0; i < cases; i++)
        {
            byte[] bytes = Mutator.Mutate(valid, seed: reader.Length, i, text);
            Exception? error = null;
            var run = Task.Run(() =>
            {
                try
                {
                    read(bytes);
                }
                catch (Exception e)
                {
                    error = e;
                }
            });
            Assert.True(run.Wait(CaseTimeout), $"{reader} case {i} did not finish within {CaseTimeout.TotalSeconds} s");
            if (error is null) succeeded++;
            else if (userError.IsInstanceOfType(error)) refused++;
            else Assert.Fail($"{reader} case {i} ({bytes.Length} bytes) threw {error.GetType().Name}: {error.Message}\n{error.StackTrace}");
            if (i % 64 == 0)
            {
                long now = Environment.WorkingSet;
                peak = Math.Max(peak, now);
                Assert.True(now - startMemory < MemoryGrowthBound, $"{reader} case {i}: working set {now >> 20} MB, {(now - startMemory) >> 20} MB above the start");
            }
        }
        Assert.True(refused > 0, $"{reader}: no mutation was refused, so the fuzzing reached no error path");
        output.WriteLine($"{reader}: {cases} cases in {clock.Elapsed.TotalSeconds:F1} s: {succeeded} read, {refused} refused with a user error; working set {startMemory >> 20} MB at the start, {peak >> 20} MB at most");
    }

    [Fact]
    public void Safetensors()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "w.safetensors");
        using (var scope = NewDisposeScope())
        {
            var tensors = new Dictionary<string, Tensor>
            {
                ["a.weight"] = arange(12, dtype: ScalarType.Float32).reshape(3, 4),
                ["b"] = tensor(new long[] { 1, -2 }),
                ["c"] = ones(5, dtype: ScalarType.Byte),
                ["d"] = zeros(2, 2, dtype: ScalarType.Float16),
            };
            Diffuse.Checkpoints.Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        Fuzz("safetensors", File.ReadAllBytes(path), 3000, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            using var scope = NewDisposeScope();
            Diffuse.Checkpoints.Safetensors.Load(path);
            Diffuse.Checkpoints.Safetensors.ReadHeader(path);
        });
    }

    [Fact]
    public void ConfigJsonThroughModelLoading()
    {
        using var dir = new TempDir();
        string model = HostileModels.Copy(models.Table, dir.Path);
        string path = Path.Combine(model, "config.json");
        Fuzz("config.json", File.ReadAllBytes(path), 2000, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            DiffusionModelConfig.Load(path);
            using var loaded = DiffusionModel.Load(model); // the weights' header against the config, then the network
        }, text: true);
    }

    [Fact]
    public void Csv()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "t.csv");
        byte[] valid = "\"x, first\",y;z,w\n1.5,-2,3e-4\n0,\"7\",1\n-0.25,2.5,100\n3,4,5\n"u8.ToArray();
        Fuzz("CSV", valid, 2500, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            var table = CsvTable.Load(path);
            using var values = table.ToTensor();
        }, text: true);
    }

    [Fact]
    public void Idx()
    {
        using var dir = new TempDir();
        string images = Path.Combine(dir.Path, "train-images-idx3-ubyte");
        var pixels = Enumerable.Range(0, 4 * 3 * 3).Select(i => (byte)(i * 7)).ToArray();
        IdxReaderTests.WriteIdx(images, [4, 3, 3], pixels);
        IdxReaderTests.WriteIdx(Path.Combine(dir.Path, "train-labels-idx1-ubyte"), [4], [0, 1, 1, 0]);
        Fuzz("IDX", File.ReadAllBytes(images), 3000, bytes =>
        {
            File.WriteAllBytes(images, bytes);
            using var data = IdxReader.Load(images);
        });
    }

    [Fact]
    public void Png()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "a.png");
        Fuzz("PNG", ImageFolderLinkTests.Png(3), 2000, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            ImageFolderReader.Load(dir.Path, 4, grayscale: false, strict: true);
        }, userError: typeof(ImageFolderException));
    }
}
