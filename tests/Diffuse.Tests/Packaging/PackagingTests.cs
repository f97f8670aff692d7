using System.IO.Compression;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Xml.Linq;
using Diffuse.Build;
using SkiaSharp;
using Xunit.Abstractions;

namespace Diffuse.Tests.Packaging;

/// <summary>
/// Diffuse as a new user gets it: the three packages from a local feed (packed once, <see cref="PackageFeed"/>), their
/// contents and metadata, a fresh console app that runs the README's examples, and the installed <c>diffuse</c> tool.
/// </summary>
public sealed class PackagingTests(PackageFeed feed, ITestOutputHelper output) : IClassFixture<PackageFeed>
{
    private const string Glibcxx = "GLIBCXX_3.4.32";

    [Fact]
    public void LibraryPackageDependsOnTorchSharpAndLinuxLibtorchAndCarriesTheBuildFixAndTheModels()
    {
        using var package = ZipFile.OpenRead(feed.Package("Diffuse"));
        var nuspec = CheckMetadata(package, "Diffuse");
        var dependencies = nuspec.Descendants().Where(e => e.Name.LocalName == "dependency")
            .ToDictionary(e => (string)e.Attribute("id")!, e => (string)e.Attribute("version")!);
        Assert.Equal(new Dictionary<string, string>
        {
            ["TorchSharp"] = feed.PinnedVersion("TorchSharp"),
            ["libtorch-cpu-linux-x64"] = feed.PinnedVersion("libtorch-cpu-linux-x64"),
        }, dependencies);

        var dll = Entry(package, "lib/net10.0/Diffuse.dll");
        Assert.NotNull(package.GetEntry("lib/net10.0/Diffuse.xml"));
        using (var pe = new PEReader(new MemoryStream(dll)))
            Assert.Contains(pe.ReadDebugDirectory(), d => d.Type == DebugDirectoryEntryType.EmbeddedPortablePdb);

        // The consumer's build step is the repository's build/ files themselves, not copies that could drift.
        foreach (string file in new[] { "Diffuse.targets", "TorchSharpNativeFix.targets", "ElfWeakVersion.cs" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(feed.RepositoryRoot, "build", file)), Entry(package, "buildTransitive/" + file));

        string models = Path.Combine(feed.RepositoryRoot, "models");
        var shipped = Directory.GetFiles(models, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(models, f).Replace('\\', '/')).Order().ToList();
        Assert.Superset(new HashSet<string> { "fashion-mnist/config.json", "fashion-mnist/model.safetensors", "fashion-mnist/loss.csv",
            "fashion-mnist/NOTICE.md", "classifiers/fashion-mnist.safetensors", "classifiers/mnist.safetensors", "classifiers/NOTICE.md" },
            shipped.ToHashSet());
        Assert.Equal(shipped, package.Entries.Select(e => e.FullName).Where(n => n.StartsWith("models/", StringComparison.Ordinal))
            .Select(n => n["models/".Length..]).Order().ToList());
        foreach (string file in shipped) Assert.Equal(File.ReadAllBytes(Path.Combine(models, file)), Entry(package, "models/" + file));

        long size = new FileInfo(feed.Package("Diffuse")).Length;
        output.WriteLine($"Diffuse {feed.Version}: {size / 1e6:F1} MB, {package.Entries.Sum(e => e.Length) / 1e6:F1} MB unpacked");
        // The shipped models (Fashion-MNIST, emoji and three classifiers, about 10 MB) and the assembly; far below any native library.
        Assert.InRange(size, 1_000_000, 16_000_000);
    }

    [Fact]
    public void ImagingPackageIsSeparateAndKeepsSkiaSharpOutOfTheCore()
    {
        using var package = ZipFile.OpenRead(feed.Package("Diffuse.Imaging"));
        var nuspec = CheckMetadata(package, "Diffuse.Imaging");
        var dependencies = nuspec.Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => (string)e.Attribute("id")!).ToList();
        Assert.Contains("SkiaSharp", dependencies);
        Assert.DoesNotContain("TorchSharp", dependencies);
        Assert.NotNull(package.GetEntry("lib/net10.0/Diffuse.Imaging.dll"));
        Assert.NotNull(package.GetEntry("lib/net10.0/Diffuse.Imaging.xml"));
        using var core = ZipFile.OpenRead(feed.Package("Diffuse"));
        Assert.DoesNotContain(core.Entries, e => e.FullName.Contains("Skia", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void ToolPackageCarriesLinuxX64NativesOnlyWithTheWeakFixAndTheModels()
    {
        using var package = ZipFile.OpenRead(feed.Package("Diffuse.Cli"));
        var nuspec = CheckMetadata(package, "Diffuse.Cli");
        Assert.Contains(nuspec.Descendants(), e => e.Name.LocalName == "packageType" && (string?)e.Attribute("name") == "DotnetTool");
        const string root = "tools/net10.0/any/";
        var settings = XDocument.Parse(System.Text.Encoding.UTF8.GetString(Entry(package, root + "DotnetToolSettings.xml")).TrimStart('\uFEFF'));
        Assert.Equal("diffuse", (string?)settings.Descendants("Command").Single().Attribute("Name"));

        var names = package.Entries.Select(e => e.FullName).ToList();
        var natives = names.Where(n => n.StartsWith(root + "runtimes/", StringComparison.Ordinal)).ToList();
        Assert.All(natives, n => Assert.StartsWith(root + "runtimes/linux-x64/native/", n));
        Assert.DoesNotContain(natives, n => n.EndsWith("/libtorch_python.so", StringComparison.Ordinal));
        foreach (string needed in new[] { "libtorch_cpu.so", "libtorch.so", "libc10.so", "libgomp-98b21ff3.so.1", "libLibTorchSharp.so", "libSkiaSharp.so" })
            Assert.Contains(root + "runtimes/linux-x64/native/" + needed, natives);
        AssertGlibcxxWeak(Entry(package, root + "runtimes/linux-x64/native/libLibTorchSharp.so"), "the tool package's libLibTorchSharp.so");
        foreach (string model in new[] { "models/fashion-mnist/model.safetensors", "models/fashion-mnist/config.json", "models/classifiers/fashion-mnist.safetensors", "models/classifiers/mnist.safetensors" })
            Assert.Contains(root + model, names);

        long size = new FileInfo(feed.Package("Diffuse.Cli")).Length;
        output.WriteLine($"Diffuse.Cli {feed.Version}: {size / 1e6:F1} MB, {package.Entries.Sum(e => e.Length) / 1e6:F1} MB unpacked");
        Assert.True(size < 150_000_000, $"the tool package is {size / 1e6:F1} MB: did other platforms' natives come back?");
    }

    [Fact]
    public void ReadmeExamplesRunInAFreshConsoleApp()
    {
        Assert.NotEmpty(ReadmeSnippets.Blocks(File.ReadAllText(Path.Combine(feed.RepositoryRoot, "README.md")), "## The library in a few lines"));
        var app = feed.App.Value;
        WriteTimings();
        app.Run.AssertSucceeded($"the README examples (Program.cs:\n{app.Program})");
        Assert.Contains("snippets: ok (2)", app.Run.Out);
    }

    [Fact]
    public void ConsumerOutputHasTheShippedModelsAndTheWeakGlibcxxRequirement()
    {
        var app = feed.App.Value;
        WriteTimings();
        string models = Path.Combine(feed.RepositoryRoot, "models");
        foreach (string folder in new[] { app.Output, app.PublishOutput })
        {
            foreach (string file in new[] { "fashion-mnist/model.safetensors", "fashion-mnist/config.json", "fashion-mnist/loss.csv", "classifiers/fashion-mnist.safetensors", "classifiers/mnist.safetensors" })
            {
                string path = Path.Combine(folder, "models", file);
                Assert.True(File.Exists(path), $"{path} is missing: the Diffuse package did not copy its models");
                Assert.Equal(new FileInfo(Path.Combine(models, file)).Length, new FileInfo(path).Length);
            }
            if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) continue;
            string native = Path.Combine(folder, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            Assert.True(File.Exists(native), $"{native} is missing");
            AssertGlibcxxWeak(File.ReadAllBytes(native), native);
        }
        // The package's build step changed the app's copies only: TorchSharp's file in the NuGet cache is as shipped.
        string cached = Path.Combine(PackageFeed.GlobalPackagesFolder, "torchsharp", feed.PinnedVersion("TorchSharp"), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (File.Exists(cached))
            Assert.Contains(ElfVersionNeeds.Read(File.ReadAllBytes(cached)), e => e.Name == Glibcxx && !e.IsWeak);
    }

    [Fact]
    public void SwappingLibtorchExcludesTheLinuxPackageEntirely()
    {
        // What the README tells Windows, macOS and CUDA users to write next to their own libtorch package (not restored
        // here: those are hundreds of MB to GBs). Restore only, and ask MSBuild what the build would copy.
        _ = feed.App.Value; // the consumer app's restore is the comparison: the same query without the exclusion
        string swap = feed.NewFolder("swap");
        feed.WriteNuGetConfig(swap);
        File.WriteAllText(Path.Combine(swap, "Swap.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework></PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Diffuse" Version="{feed.Version}" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="{feed.PinnedVersion("libtorch-cpu-linux-x64")}" ExcludeAssets="all" />
              </ItemGroup>
            </Project>
            """);
        var swapped = Resolve(swap);
        var plain = Resolve(feed.App.Value.Folder);
        Assert.Equal("true", plain.CpuFlag);
        Assert.Contains(plain.Natives, n => n.EndsWith("libtorch_cpu.so", StringComparison.Ordinal));
        Assert.Equal("", swapped.CpuFlag); // libtorch-cpu-linux-x64's props are gone too, so a CUDA package raises no conflict
        Assert.DoesNotContain(swapped.Natives, n => n.Contains("libtorch-cpu-linux-x64", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(swapped.Natives, n => n.EndsWith("libLibTorchSharp.so", StringComparison.Ordinal));
    }

    [Fact]
    public void ToolInstallsAndSamplesFromTheShippedModel()
    {
        string tools = feed.ToolFolder.Value;
        string diffuse = Path.Combine(tools, "diffuse");
        var version = ChildProcess.Run(diffuse, new[] { "--version" }, tools, TimeSpan.FromMinutes(2));
        version.AssertSucceeded("diffuse --version");
        Assert.Equal(feed.Version, version.Out.Trim());

        string png = Path.Combine(tools, "s.png");
        var sample = ChildProcess.Run(diffuse, new[] { "sample", "--model", "fashion-mnist", "--class", "7", "--count", "8", "--out", png }, tools, TimeSpan.FromMinutes(5));
        WriteTimings();
        output.WriteLine($"diffuse sample: {sample.Elapsed.TotalSeconds:F1} s");
        sample.AssertSucceeded("diffuse sample --model fashion-mnist --class 7 --count 8");
        byte[] bytes = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.True(bitmap.Width >= 28 && bitmap.Height >= 28 && bitmap.Width * bitmap.Height >= 8 * 28 * 28,
            $"a {bitmap.Width}×{bitmap.Height} picture cannot hold a grid of 8 images of 28×28");
    }

    /// <summary>The metadata every package carries; returns the nuspec.</summary>
    private XDocument CheckMetadata(ZipArchive package, string id)
    {
        var nuspec = XDocument.Parse(System.Text.Encoding.UTF8.GetString(Entry(package, id + ".nuspec")).TrimStart('\uFEFF'));
        string? Field(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Equal(id, Field("id"));
        Assert.Equal(feed.Version, Field("version"));
        Assert.Equal("MIT", Field("license"));
        Assert.Equal("expression", (string?)nuspec.Descendants().Single(e => e.Name.LocalName == "license").Attribute("type"));
        Assert.Equal("README.md", Field("readme"));
        Assert.Equal("Diffuse developers", Field("authors"));
        Assert.False(string.IsNullOrWhiteSpace(Field("description")));
        Assert.NotEqual("Package Description", Field("description"));
        Assert.Contains("diffusion", (Field("tags") ?? "").Split(' '));
        Assert.Equal(File.ReadAllBytes(Path.Combine(feed.RepositoryRoot, "docs", "package", "README.md")), Entry(package, "README.md"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(feed.RepositoryRoot, "LICENSE")), Entry(package, "LICENSE"));
        Assert.NotNull(package.GetEntry("CHANGELOG.md"));
        return nuspec;
    }

    private static byte[] Entry(ZipArchive package, string name)
    {
        var entry = package.GetEntry(name);
        Assert.True(entry is not null, $"the package has no {name}");
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static void AssertGlibcxxWeak(byte[] image, string what)
    {
        var entries = ElfVersionNeeds.Read(image).Where(e => e.Name == Glibcxx).ToList();
        Assert.True(entries.Count > 0, $"{what} does not require {Glibcxx} at all (another TorchSharp build?)");
        Assert.True(entries.All(e => e.IsWeak), $"{what} requires {Glibcxx} strongly: it will not load on Debian 12 or Ubuntu 22.04");
    }

    /// <summary>What a restored project's build would copy from runtimes/ and whether libtorch-cpu-linux-x64's props ran.</summary>
    private (string CpuFlag, IReadOnlyList<string> Natives) Resolve(string project)
    {
        var result = ChildProcess.RunDotnet(project, TimeSpan.FromMinutes(10), "msbuild", "-restore", "-t:ResolvePackageAssets",
            "-getProperty:TorchSharpCpuPackage", "-getItem:RuntimeTargetsCopyLocalItems");
        using var json = JsonDocument.Parse(result.Out[result.Out.IndexOf('{')..]);
        string flag = json.RootElement.GetProperty("Properties").GetProperty("TorchSharpCpuPackage").GetString() ?? "";
        var natives = json.RootElement.GetProperty("Items").GetProperty("RuntimeTargetsCopyLocalItems").EnumerateArray()
            .Select(i => i.GetProperty("Identity").GetString()!.Replace('\\', '/')).ToList();
        return (flag, natives);
    }

    private void WriteTimings()
    {
        foreach (string line in feed.Timings) output.WriteLine(line);
    }
}
