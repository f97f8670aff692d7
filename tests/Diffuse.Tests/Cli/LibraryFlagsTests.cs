using System.Reflection;
using System.Text.RegularExpressions;
using Diffuse.Cli;
using Diffuse.Sampling;
using Diffuse.Tests.Training;
using Spectre.Console.Cli;
using static Diffuse.Tests.Cli.Cli;

namespace Diffuse.Tests.Cli;

public class LibraryFlagsTests
{
    [Fact]
    public void EveryParameterTheLibraryNamesHasItsCommandLineWords()
    {
        var used = LibrarySource.ParameterNames.Select(l => l.Text).ToHashSet(StringComparer.Ordinal);
        var missing = used.Where(n => !LibraryFlags.Table.ContainsKey(n)).Order(StringComparer.Ordinal).ToArray();
        Assert.True(missing.Length == 0, "library names without an entry in LibraryFlags.Table (its flag, or null when no flag sets it): " + string.Join(", ", missing));
        var unused = LibraryFlags.Table.Keys.Where(n => !used.Contains(n)).Order(StringComparer.Ordinal).ToArray();
        Assert.True(unused.Length == 0, "LibraryFlags.Table entries no library message uses: " + string.Join(", ", unused));
    }

    [Fact]
    public void TheTableNamesOnlyFlagsAndCommandsThatExist()
    {
        var options = typeof(Program).Assembly.GetTypes()
            .SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(p => p.GetCustomAttribute<CommandOptionAttribute>())
            .OfType<CommandOptionAttribute>()
            .SelectMany(a => a.LongNames).Select(n => "--" + n).ToHashSet(StringComparer.Ordinal);
        foreach (string words in LibraryFlags.Table.Values.OfType<string>())
        {
            foreach (Match flag in Regex.Matches(words, @"--[a-z][a-z-]*"))
                Assert.True(options.Contains(flag.Value), $"'{words}' names {flag.Value}, which no command takes");
            foreach (Match command in Regex.Matches(words, @"'diffuse ([a-z-]+)"))
                Assert.Equal(0, Run(command.Groups[1].Value, "--help").Code);
        }
    }

    [Fact]
    public void TheCommandLinePrintsTheLibrarysMessagesWithItsFlags()
    {
        using var dir = new TempDir();
        var result = Run("train", "--data", "moons", "--out", Path.Combine(dir.Path, "model"), "--steps", "0");
        Assert.Equal(1, result.Code);
        Assert.Equal("error: --steps must be at least 1 (got 0).", result.Err.TrimEnd());
        AssertUserError(Run("train", "--data", "moons", "--out", Path.Combine(dir.Path, "model"), "--formulation", "edm", "--learn-variance"),
            "Drop --learn-variance or use --formulation ddpm.");

        // sampler.json is a file the command line writes: the library says how to write it again, the command line which command does.
        File.WriteAllText(Path.Combine(dir.Path, SamplerRecord.FileName), "{ not json");
        var e = Assert.Throws<DiffuseException>(() => SamplerRecord.Load(dir.Path));
        Assert.EndsWith("Run SamplerBenchmark.Run and SamplerRecord.Save again, or delete the file.", e.Message);
        Assert.EndsWith($"Run 'diffuse bench-samplers --model {dir.Path}' again, or delete the file.", LibraryFlags.Message(e));
    }
}
