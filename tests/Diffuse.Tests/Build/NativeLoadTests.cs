using System.Runtime.InteropServices;
using Diffuse.Build;
using static TorchSharp.torch;

namespace Diffuse.Tests.Build;

public class NativeLoadTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        using var x = arange(4, dtype: ScalarType.Float64);
        Assert.Equal(6.0, x.sum().item<double>());
    }

    [Fact]
    public void BuildOutputMarksTheGcc13VersionRequirementWeak()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return;
        string path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"missing {path}");
        var entries = ElfVersionNeeds.Read(File.ReadAllBytes(path));
        var glibcxx = entries.Where(e => e.Name == "GLIBCXX_3.4.32").ToList();
        Assert.NotEmpty(glibcxx);
        Assert.All(glibcxx, e => Assert.True(e.IsWeak));
        // Every other requirement is left as it was: still strong.
        Assert.Contains(entries, e => e.Name.StartsWith("GLIBCXX_3.4.", StringComparison.Ordinal) && !e.IsWeak);
    }

    [Fact]
    public void MarkWeakIsIdempotent()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(source)) return;
        string copy = Path.GetTempFileName();
        try
        {
            File.Copy(source, copy, overwrite: true);
            Assert.Equal(0, ElfVersionNeeds.MarkWeak(copy, "GLIBCXX_3.4.32"));
            Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(copy));
        }
        finally { File.Delete(copy); }
    }
}
