using System.Diagnostics;
using System.Xml.Linq;
using Diffuse.Tests.Distributed;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Packaging;

/// <summary>
/// The packages Diffuse, Diffuse.Imaging and Diffuse.Cli, packed once per test run into a local folder feed with a
/// version of their own (<c>&lt;Version&gt;-test.&lt;ticks&gt;</c>), and what a new user makes of them: a console app that
/// references them and runs the README's examples, and the installed tool. The sources are packed from a copy in a
/// temporary folder, so the repository's bin/ and obj/ stay as they are (a version change would rebuild them). On
/// dispose, the temporary folder and this version's entries in the NuGet global packages folder are deleted.
/// </summary>
public sealed class PackageFeed : IDisposable
{
    public static readonly string[] PackageIds = { "Diffuse", "Diffuse.Imaging", "Diffuse.Cli" };

    private static readonly TimeSpan Long = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan Short = TimeSpan.FromMinutes(5);

    private readonly TempDir _temp = new();
    private readonly List<string> _timings = new();

    public PackageFeed()
    {
        try { Pack(); }
        catch
        {
            Dispose();
            throw;
        }
        App = new Lazy<ConsumerApp>(CreateConsumerApp);
        ToolFolder = new Lazy<string>(InstallTool);
    }

    private void Pack()
    {
        RepositoryRoot = FindRepositoryRoot();
        string version = XDocument.Load(Path.Combine(RepositoryRoot, "Directory.Build.props")).Descendants("Version").Single().Value;
        Version = $"{version.Split('-', '+')[0]}-test.{DateTime.UtcNow.Ticks}";
        Feed = Directory.CreateDirectory(Path.Combine(_temp.Path, "feed")).FullName;
        string sources = Path.Combine(_temp.Path, "sources");
        foreach (string folder in new[] { "src", "build", "models", Path.Combine("docs", "package") })
            CopyFolder(Path.Combine(RepositoryRoot, folder), Path.Combine(sources, folder));
        foreach (string file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props", "LICENSE", "CHANGELOG.md" })
            File.Copy(Path.Combine(RepositoryRoot, file), Path.Combine(sources, file));
        File.WriteAllText(Path.Combine(sources, "packages.slnx"),
            "<Solution>\n" + string.Concat(PackageIds.Select(id => $"  <Project Path=\"src/{id}/{id}.csproj\" />\n")) + "</Solution>\n");
        Timed("dotnet pack (3 packages)", () => ChildProcess.RunDotnet(sources, Long,
            "pack", "packages.slnx", "-c", "Release", $"-p:Version={Version}", $"-p:PackageOutputPath={Feed}"));
    }

    public string RepositoryRoot { get; private set; } = "";

    /// <summary>The packages' version, unique to this test run.</summary>
    public string Version { get; private set; } = "";

    /// <summary>The local folder feed holding the three .nupkg files.</summary>
    public string Feed { get; private set; } = "";

    public string Package(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    /// <summary>A fresh console app that references Diffuse and Diffuse.Imaging from the feed, built and published, and its run of the examples.</summary>
    public Lazy<ConsumerApp> App { get; }

    /// <summary>The folder of <c>dotnet tool install --tool-path</c>, holding the <c>diffuse</c> command.</summary>
    public Lazy<string> ToolFolder { get; }

    /// <summary>How long each step took, for the test output.</summary>
    public IReadOnlyList<string> Timings => _timings;

    /// <summary>The pinned version of a package in Directory.Packages.props.</summary>
    public string PinnedVersion(string id) =>
        XDocument.Load(Path.Combine(RepositoryRoot, "Directory.Packages.props")).Descendants("PackageVersion")
            .Single(e => (string?)e.Attribute("Include") == id).Attribute("Version")!.Value;

    /// <summary>The NuGet global packages folder, where restores put packages.</summary>
    public static string GlobalPackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The C# examples a new user copies: the README section "The library in a few lines", then the package README's.</summary>
    public IReadOnlyList<string> Examples() =>
        ReadmeSnippets.Blocks(File.ReadAllText(Path.Combine(RepositoryRoot, "README.md")), "## The library in a few lines")
            .Concat(ReadmeSnippets.Blocks(File.ReadAllText(Path.Combine(RepositoryRoot, "docs", "package", "README.md")), "## Example: eight sneakers from the shipped model"))
            .ToList();

    /// <summary>The last line of the examples' program: it computes with libtorch, so it proves the native libraries loaded.</summary>
    public const string Epilogue = "Console.WriteLine($\"snippets: ok ({TorchSharp.torch.ones(2).sum().item<float>()})\");";

    private ConsumerApp CreateConsumerApp()
    {
        string app = Path.Combine(_temp.Path, "app");
        Timed("dotnet new console", () => ChildProcess.RunDotnet(_temp.Path, Short, "new", "console", "-n", "NewUserApp", "-o", app, "--no-restore"));
        WriteNuGetConfig(app);
        Timed("dotnet add package Diffuse", () => ChildProcess.RunDotnet(app, Long, "add", "package", "Diffuse", "--version", Version));
        Timed("dotnet add package Diffuse.Imaging", () => ChildProcess.RunDotnet(app, Long, "add", "package", "Diffuse.Imaging", "--version", Version));
        string program = ReadmeSnippets.Program(Examples(), Epilogue);
        File.WriteAllText(Path.Combine(app, "Program.cs"), program);
        string publish = Path.Combine(app, "publish");
        var built = Timed("dotnet publish (builds too)", () => ChildProcess.Run(ChildProcess.Dotnet, new[] { "publish", "-c", "Release", "-o", publish }, app, Long));
        Assert.True(built.Code == 0, $"the examples did not build (exit {built.Code}):\n{built.Err}\n{built.Out}\nProgram.cs:\n{program}");
        string output = Path.Combine(app, "bin", "Release", "net10.0");
        string work = Directory.CreateDirectory(Path.Combine(_temp.Path, "run")).FullName;
        var run = Timed("run the examples", () => ChildProcess.Run(ChildProcess.Dotnet, new[] { Path.Combine(output, "NewUserApp.dll") }, work, TimeSpan.FromMinutes(10)));
        return new ConsumerApp(app, output, publish, program, run);
    }

    private string InstallTool()
    {
        string tools = Path.Combine(_temp.Path, "tools");
        Timed("dotnet tool install Diffuse.Cli", () => ChildProcess.RunDotnet(_temp.Path, Long,
            "tool", "install", "--tool-path", tools, "Diffuse.Cli", "--version", Version, "--add-source", Feed));
        return tools;
    }

    /// <summary>A nuget.config beside a project that adds the test feed to the user's sources (nuget.org stays for TorchSharp).</summary>
    public void WriteNuGetConfig(string folder) =>
        File.WriteAllText(Path.Combine(folder, "nuget.config"),
            $"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n    <add key=\"diffuse-test-feed\" value=\"{Feed}\" />\n  </packageSources>\n</configuration>\n");

    public string NewFolder(string name) => Directory.CreateDirectory(Path.Combine(_temp.Path, name)).FullName;

    private T Timed<T>(string step, Func<T> action)
    {
        var clock = Stopwatch.StartNew();
        T result = action();
        lock (_timings) _timings.Add($"{step}: {clock.Elapsed.TotalSeconds:F1} s");
        return result;
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (string folder in Directory.GetDirectories(from))
        {
            string name = Path.GetFileName(folder);
            if (name is "bin" or "obj") continue;
            CopyFolder(folder, Path.Combine(to, name));
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Diffuse.slnx"))) return dir.FullName;
        throw new InvalidOperationException("the repository root (Diffuse.slnx) is not above the test binaries.");
    }

    public void Dispose()
    {
        // Restores and the tool install put this version into the global packages folder: take it out again.
        foreach (string id in Version.Length == 0 ? Array.Empty<string>() : PackageIds)
        {
            string folder = Path.Combine(GlobalPackagesFolder, id.ToLowerInvariant());
            string entry = Path.Combine(folder, Version.ToLowerInvariant());
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            if (Directory.Exists(folder) && !Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
        }
        _temp.Dispose();
    }
}

/// <summary>The new user's console app: its project folder, build and publish output folders, the program made of the examples, and its run.</summary>
public sealed record ConsumerApp(string Folder, string Output, string PublishOutput, string Program, JobResult Run);
