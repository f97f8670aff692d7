using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;

namespace Diffuse.Tests;

/// <summary>
/// The public surface of the library packages, listed in <c>api/*.txt</c> and compared with the built assemblies: an
/// accidental change of the API (a removed member, a changed default, a new public type) fails here and shows in review
/// as a diff of the listing. After an intended change, regenerate with
/// <c>DIFFUSE_UPDATE_API=1 ./test --filter FullyQualifiedName~PublicApiTests</c>.
/// </summary>
public class PublicApiTests
{
    public static TheoryData<string> Assemblies => new() { "Diffuse", "Diffuse.Imaging" };

    [Theory]
    [MemberData(nameof(Assemblies))]
    public void ThePublicApiMatchesItsCheckedInListing(string assemblyName)
    {
        var assembly = Assembly.Load(assemblyName);
        string actual = Listing(assembly);
        string path = Path.Combine(RepositoryRoot(), "api", assemblyName + ".txt");
        if (Environment.GetEnvironmentVariable("DIFFUSE_UPDATE_API") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, actual);
        }
        Assert.True(File.Exists(path), $"{path} is missing: run DIFFUSE_UPDATE_API=1 ./test --filter FullyQualifiedName~PublicApiTests");
        var expected = File.ReadAllLines(path);
        var lines = actual.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var removed = expected.Except(lines).ToArray();
        var added = lines.Except(expected).ToArray();
        Assert.True(removed.Length == 0 && added.Length == 0,
            $"the public API of {assemblyName} differs from {path}.\nremoved:\n  {string.Join("\n  ", removed)}\nadded:\n  {string.Join("\n  ", added)}\n" +
            "If the change is intended, regenerate the listing with DIFFUSE_UPDATE_API=1 ./test --filter FullyQualifiedName~PublicApiTests.");
    }

    [Fact]
    public void TheListingSeesMembersAndDefaultsSoAChangeCannotHide()
    {
        string listing = Listing(typeof(DiffusionModel).Assembly);
        Assert.Contains("method Diffuse.DiffusionModel.Sample(Int32 count, UInt64 seed, Diffuse.Sampling.SamplerOptions? options = null", listing);
        Assert.Contains("property Diffuse.Configuration.TrainingConfig.Steps : Int32 { get; init; }", listing);
        Assert.DoesNotContain("Diffuse.Training.Trainer.MicroBatch", listing);   // private
    }

    [Fact]
    public void EveryPublicClassCanBeReachedWithoutInternals()
    {
        // A public type that a user cannot construct, obtain from a public member, or use through static members is dead
        // weight in the API: every public non-static class has a public constructor, a public static factory returning it,
        // or is returned by some public member (or is abstract with public subclasses).
        var assembly = typeof(DiffusionModel).Assembly;
        var types = assembly.GetExportedTypes();
        var produced = new HashSet<Type>();
        foreach (var type in types)
            foreach (var member in type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                Type? result = member switch
                {
                    MethodInfo m => m.ReturnType,
                    PropertyInfo p => p.PropertyType,
                    FieldInfo f => f.FieldType,
                    _ => null,
                };
                for (var t = Unwrap(result); t is not null; t = t.BaseType) produced.Add(t);
                if (member is EventInfo e && e.EventHandlerType is { IsGenericType: true } h) produced.Add(h.GetGenericArguments()[0]);
                if (member is MethodInfo method)
                    foreach (var parameter in method.GetParameters())
                        if (Unwrap(parameter.ParameterType) is { IsGenericType: true } g && g.GetGenericTypeDefinition().Name.StartsWith("Action", StringComparison.Ordinal))
                            foreach (var argument in g.GetGenericArguments()) produced.Add(argument);
            }
        var unreachable = types.Where(t => t.IsClass && !(t.IsAbstract && t.IsSealed) && !t.IsAbstract
            && t.GetConstructors().Length == 0 && !produced.Contains(t) && !typeof(Exception).IsAssignableFrom(t)).Select(t => t.FullName).ToArray();
        Assert.True(unreachable.Length == 0, "public classes that a user can neither construct nor obtain: " + string.Join(", ", unreachable));
    }

    private static Type? Unwrap(Type? type)
    {
        if (type is null) return null;
        if (type.IsArray) return Unwrap(type.GetElementType());
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Task<>)) return Unwrap(type.GetGenericArguments()[0]);
        if (type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) || type.GetGenericTypeDefinition() == typeof(IEnumerable<>)))
            return Unwrap(type.GetGenericArguments()[0]);
        if (Nullable.GetUnderlyingType(type) is { } inner) return inner;
        return type;
    }

    /// <summary>One line per public or protected member of every exported type, sorted: what the package promises.</summary>
    internal static string Listing(Assembly assembly)
    {
        var lines = new List<string>();
        foreach (var type in assembly.GetExportedTypes())
        {
            lines.Add($"{Kind(type)} {Name(type)}{Bases(type)}");
            const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var member in type.GetMembers(flags))
            {
                string? line = member switch
                {
                    ConstructorInfo c when Visible(c) => $"ctor {Name(type)}({Parameters(c.GetParameters())})",
                    MethodInfo m when Visible(m) && !m.IsSpecialName && !m.Name.StartsWith('<') =>
                        $"method {Name(type)}.{m.Name}{GenericArguments(m)}({Parameters(m.GetParameters())}) : {Name(m.ReturnType, m.ReturnParameter)}{(m.IsStatic ? " static" : "")}",
                    MethodInfo m when Visible(m) && m.IsSpecialName && m.Name.StartsWith("op_", StringComparison.Ordinal) =>
                        $"operator {Name(type)}.{m.Name}({Parameters(m.GetParameters())}) : {Name(m.ReturnType)}",
                    PropertyInfo p when Accessors(p) is { Length: > 0 } accessors && p.Name != "EqualityContract" =>
                        $"property {Name(type)}.{p.Name}{Indexer(p)} : {Name(p.PropertyType, p)} {{ {accessors} }}{(p.GetAccessors(true)[0].IsStatic ? " static" : "")}",
                    FieldInfo f when f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly =>
                        type.IsEnum ? (f.IsStatic ? $"value {Name(type)}.{f.Name} = {Convert.ToInt64(f.GetRawConstantValue())}" : null)
                        : $"field {Name(type)}.{f.Name} : {Name(f.FieldType, f)}{(f.IsLiteral ? $" = {Literal(f.GetRawConstantValue())}" : f.IsInitOnly ? " readonly" : "")}{(f.IsStatic && !f.IsLiteral ? " static" : "")}",
                    EventInfo e when e.AddMethod is { } add && Visible(add) => $"event {Name(type)}.{e.Name} : {Name(e.EventHandlerType!)}",
                    _ => null,
                };
                if (line is not null) lines.Add(line);
            }
        }
        lines.Sort(StringComparer.Ordinal);
        return string.Join("\n", lines) + "\n";
    }

    private static bool Visible(MethodBase m) => m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly;

    private static string Accessors(PropertyInfo p)
    {
        var parts = new List<string>();
        if (p.GetMethod is { } get && Visible(get)) parts.Add("get;");
        if (p.SetMethod is { } set && Visible(set))
            parts.Add(set.ReturnParameter.GetRequiredCustomModifiers().Any(m => m == typeof(IsExternalInit)) ? "init;" : "set;");
        return string.Join(" ", parts);
    }

    private static string Indexer(PropertyInfo p) => p.GetIndexParameters() is { Length: > 0 } index ? $"[{Parameters(index)}]" : "";

    private static string Kind(Type type) =>
        type.IsEnum ? "enum" : type.IsInterface ? "interface" : type.IsValueType ? (type.GetMethod("<Clone>$") is null && IsRecord(type) ? "record struct" : "struct")
        : typeof(Delegate).IsAssignableFrom(type) ? "delegate"
        : IsRecord(type) ? (type.IsSealed ? "sealed record" : type.IsAbstract ? "abstract record" : "record")
        : type.IsAbstract && type.IsSealed ? "static class" : type.IsSealed ? "sealed class" : type.IsAbstract ? "abstract class" : "class";

    private static bool IsRecord(Type type) =>
        type.GetMethod("<Clone>$") is not null || (type.IsValueType && type.GetMethod("PrintMembers", BindingFlags.NonPublic | BindingFlags.Instance) is not null);

    private static string Bases(Type type)
    {
        var bases = new List<string>();
        if (type.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && !typeof(Delegate).IsAssignableFrom(type)) bases.Add(Name(b));
        bases.AddRange(type.GetInterfaces().Where(i => i.IsPublic || i.IsNestedPublic).Where(i => !i.Name.StartsWith("IEquatable", StringComparison.Ordinal)).Select(i => Name(i)).Order(StringComparer.Ordinal));
        return bases.Count == 0 ? "" : " : " + string.Join(", ", bases);
    }

    private static string GenericArguments(MethodInfo m) => m.IsGenericMethodDefinition ? $"<{string.Join(", ", m.GetGenericArguments().Select(a => a.Name))}>" : "";

    private static string Parameters(ParameterInfo[] parameters) => string.Join(", ", parameters.Select(p =>
    {
        var text = new StringBuilder();
        if (p.ParameterType.IsByRef) text.Append(p.IsOut ? "out " : p.IsIn ? "in " : "ref ");
        if (p.GetCustomAttribute<ParamArrayAttribute>() is not null) text.Append("params ");
        text.Append(Name(p.ParameterType.IsByRef ? p.ParameterType.GetElementType()! : p.ParameterType, p)).Append(' ').Append(p.Name);
        if (p.HasDefaultValue)
            text.Append(" = ").Append(p.DefaultValue is null && p.ParameterType.IsValueType && Nullable.GetUnderlyingType(p.ParameterType) is null ? "default" : Literal(p.DefaultValue));
        return text.ToString();
    }));

    private static string Literal(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        float f => f.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static readonly NullabilityInfoContext Nullability = new();

    private static string Name(Type type, ICustomAttributeProvider? owner)
    {
        string name = Name(type);
        if (type.IsValueType || owner is null) return name;
        var state = owner switch
        {
            ParameterInfo p => Nullability.Create(p).ReadState,
            PropertyInfo p => Nullability.Create(p).ReadState,
            FieldInfo f => Nullability.Create(f).ReadState,
            _ => NullabilityState.Unknown,
        };
        return state == NullabilityState.Nullable ? name + "?" : name;
    }

    private static string Name(Type type)
    {
        if (Nullable.GetUnderlyingType(type) is { } inner) return Name(inner) + "?";
        if (type.IsArray) return Name(type.GetElementType()!) + "[" + new string(',', type.GetArrayRank() - 1) + "]";
        if (type.IsGenericParameter) return type.Name;
        string name = type.Namespace is "System" or "System.Collections.Generic" or "System.Threading" or "System.Threading.Tasks" ? type.Name
            : type.IsNested ? Name(type.DeclaringType!) + "." + type.Name : (type.Namespace + "." + type.Name);
        if (!type.IsGenericType) return name;
        string plain = name[..name.IndexOf('`')];
        return $"{plain}<{string.Join(", ", type.GetGenericArguments().Select(Name))}>";
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Diffuse.slnx"))) return dir.FullName;
        throw new InvalidOperationException("the repository root (Diffuse.slnx) was not found above " + AppContext.BaseDirectory);
    }
}
